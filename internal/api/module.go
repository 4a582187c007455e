package api

import (
	"context"
	"net/url"

	"github.com/dtkhq/dtk/plan"
)

// DeleteModule deletes one version of a module (refused while a service
// uses it); its archive is collected from the coordinators' blob stores.
func (c *Client) DeleteModule(ctx context.Context, name, version string) (*plan.Module, error) {
	var out plan.Module
	_, err := c.Do(ctx, "DELETE", "/v1/modules/"+url.PathEscape(name)+"/"+url.PathEscape(version), nil, &out)
	return &out, err
}
