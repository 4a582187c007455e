package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/dtkhq/dtk/internal/bundle"
)

// BundleImportResponse is POST /v1/bundles: the modules recorded by this
// import and those that were recorded already with the same content.
type BundleImportResponse struct {
	Imported []bundle.Entry `json:"imported"`
	Existing []bundle.Entry `json:"existing"`
	Index    uint64         `json:"index"`
}

// ImportBundle uploads a module bundle (see internal/bundle). The
// coordinator checks all of it and records all of its modules or none.
func (c *Client) ImportBundle(ctx context.Context, r io.Reader) (*BundleImportResponse, error) {
	resp, err := c.send(ctx, "POST", "/v1/bundles", r, "application/gzip", shape{transfer: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out BundleImportResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("import bundle: decode answer: %w", err)
	}
	return &out, nil
}
