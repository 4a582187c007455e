package coordinator

import (
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/hclguard"
	"github.com/dtkhq/dtk/internal/limits"
	"github.com/dtkhq/dtk/plan"
)

// Request bounds that are not configuration: a bundle carries many
// modules (and their container images), a snapshot every blob; both are
// operator-only. forwardBuffer is the largest body a follower holds in
// memory to retry forwarding it; larger ones are streamed once.
const (
	maxBundleBody   = 64 << 30
	maxSnapshotBody = 2 << 30
	forwardBuffer   = 4 << 20
	// fwdBatchBodyFactor bounds a follower's batch of reports (only
	// coordinators send one): its requests' bodies add up to at most
	// limits.report_body_bytes, and encoding their reports again can grow
	// them (escaped HTML characters and replaced invalid UTF-8 take up to
	// 6 bytes for 1).
	fwdBatchBodyFactor = 8
)

// bodyClass is which bound a route's request body has.
type bodyClass int

const (
	bodyJSON        bodyClass = iota // limits.json_body_bytes
	bodyModule                       // limits.module_packed_bytes
	bodyReports                      // limits.report_body_bytes
	bodyReportBatch                  // a follower's batch: fwdBatchBodyFactor × limits.report_body_bytes
	bodyOwn                          // the handler bounds it (bundles, snapshots)
)

// bodyClassOf is the body bound of a route, by its pattern.
func bodyClassOf(pattern string) bodyClass {
	switch pattern {
	case "POST /v1/modules":
		return bodyModule
	case "POST /v1/nodes/{name}/reports", "POST /v1/nodes/{name}/ops/{id}/results":
		return bodyReports
	case "POST /v1/bundles", "PUT /v1/operator/snapshot":
		return bodyOwn
	case forwardedReportsRoute:
		return bodyReportBatch
	}
	return bodyJSON
}

// bodyLimit is the bound of a body class, its key and what the body is
// called in a refusal; 0 for bodyOwn.
func (s *Server) bodyLimit(c bodyClass) (int64, string, string) {
	switch c {
	case bodyModule:
		return s.cfg.Limits.ModulePackedBytes, limits.KeyModulePackedBytes, "module archive"
	case bodyReports:
		return s.cfg.Limits.ReportBodyBytes, limits.KeyReportBodyBytes, "report batch"
	case bodyReportBatch:
		return fwdBatchBodyFactor * s.cfg.Limits.ReportBodyBytes, limits.KeyReportBodyBytes, "forwarded report batch"
	case bodyJSON:
		return s.cfg.Limits.JSONBodyBytes, limits.KeyJSONBodyBytes, "request body"
	}
	return 0, "", ""
}

// limitBody refuses a body that says it is larger than its route's bound
// before reading any of it, and bounds the reading of the others. It
// returns false when it has answered.
func (s *Server) limitBody(w http.ResponseWriter, r *http.Request, c bodyClass) bool {
	max, key, what := s.bodyLimit(c)
	if max <= 0 {
		return true
	}
	if r.ContentLength > max {
		writeError(w, tooLarge(key, "%s is larger than %s", what, limits.Size(max)))
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, max)
	return true
}

// bodyError names the bound of c in a body-too-large error.
func (s *Server) bodyError(err error, c bodyClass) error {
	var mbe *http.MaxBytesError
	if max, key, what := s.bodyLimit(c); max > 0 && errors.As(err, &mbe) {
		return tooLarge(key, "%s is larger than %s", what, limits.Size(mbe.Limit))
	}
	return err
}

// tooLarge is a 413 naming the bound key.
func tooLarge(key, format string, args ...any) *api.APIError {
	return &api.APIError{Code: http.StatusRequestEntityTooLarge, Message: limits.Refusal(key, format, args...)}
}

// archiveLimits bounds the unpacking of a module archive.
func (s *Server) archiveLimits() archive.Limits {
	l := archive.DefaultLimits
	l.MaxTotal = s.cfg.Limits.ModuleUnpackedBytes
	l.MaxFile = s.cfg.Limits.ModuleUnpackedBytes
	l.MaxFiles = s.cfg.Limits.ModuleFiles
	return l
}

// dslLimits bounds the parsing of a module.
func (s *Server) dslLimits() dsl.Limits {
	return dsl.Limits{
		Guard:     hclguard.Limits{Depth: s.cfg.Limits.NestingDepth, Setting: limits.KeyNestingDepth},
		NameBytes: s.cfg.Limits.NameBytes, NameSetting: limits.KeyNameBytes,
		SourceBytes: s.cfg.Limits.HCLFileBytes, SourceSetting: limits.KeyHCLFileBytes,
	}
}

// archiveError turns an archive that passed a bound into a refusal
// naming the setting; other unpack errors are the archive's fault (400).
func archiveError(err error) error {
	var le *archive.LimitError
	if !errors.As(err, &le) {
		return badRequest("module archive: %v", err)
	}
	switch le.Limit {
	case archive.LimitTotal, archive.LimitFile:
		return tooLarge(limits.KeyModuleUnpackedBytes, "module unpacks to more than %s", limits.Size(le.Max))
	case archive.LimitFiles:
		return tooLarge(limits.KeyModuleFiles, "module holds more than %d files and folders", le.Max)
	}
	// Path depth and path element length are fixed bounds.
	return &api.APIError{Code: http.StatusRequestEntityTooLarge, Message: "module archive: " + err.Error()}
}

// checkLabels refuses labels past the bounds on their number and sizes.
func (s *Server) checkLabels(labels map[string]string) error {
	l := s.cfg.Limits
	if len(labels) > l.Labels {
		return badRequest("%s", limits.Refusal(limits.KeyLabels, "%d labels are more than %d", len(labels), l.Labels))
	}
	for k, v := range labels {
		switch {
		case k == "":
			return badRequest("a label key is empty")
		case len(k) > l.LabelKeyBytes:
			return badRequest("%s", limits.Refusal(limits.KeyLabelKeyBytes, "label key %.40q… is %d bytes, longer than %d", k, len(k), l.LabelKeyBytes))
		case len(v) > l.LabelValueBytes:
			return badRequest("%s", limits.Refusal(limits.KeyLabelValueBytes, "label %.40q: the value is %d bytes, longer than %d", k, len(v), l.LabelValueBytes))
		}
	}
	return nil
}

// cutReports keeps at most limits.report_output_bytes of each report's
// output (its tail: the end of a run says most) and error (its head).
func (s *Server) cutReports(reports []plan.Report) {
	max := s.cfg.Limits.ReportOutputBytes
	for i := range reports {
		reports[i].Output = cutTail(reports[i].Output, max)
		reports[i].Error = cutHead(reports[i].Error, max)
	}
}

// cutMarker says how much was cut; it counts toward the bound.
func cutMarker(n int) string {
	return fmt.Sprintf("[… %d bytes cut by the coordinator (%s) …]", n, limits.KeyReportOutputBytes)
}

// cutTail keeps the end of s within max bytes, after a marker.
func cutTail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	keep := max - len(cutMarker(len(s))) - 1
	if keep < 0 {
		keep = 0
	}
	start := len(s) - keep
	for start < len(s) && !utf8.RuneStart(s[start]) {
		start++
	}
	return cutMarker(start) + "\n" + s[start:]
}

// cutHead keeps the start of s within max bytes, before a marker.
func cutHead(s string, max int) string {
	if len(s) <= max {
		return s
	}
	keep := max - len(cutMarker(len(s))) - 1
	if keep < 0 {
		keep = 0
	}
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + "\n" + cutMarker(len(s)-keep)
}
