package coordinator

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/acl"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// The web dashboard (docs/dashboard.md): read-only pages rendered on the
// server with html/template from this coordinator's own State, filtered by
// the caller's ACL rights, and a small script of our own that long-polls
// each page's fragment for live updates. Templates, stylesheet and script
// are embedded in the binary: no CDN, no third-party code, works
// air-gapped.
//
// Authentication. Config.UI turns the routes on. With ACLs on, a browser
// signs in once at /ui/login with an ACL token; the token is kept in an
// HttpOnly, Secure, SameSite=Strict cookie that only the /ui/ routes read
// (the API never does) and is resolved on every request like the API's
// header, so a deleted or expired token stops working at once. Those
// routes need no client certificate (a certificate presented must still
// hold: the middleware refuses others). With ACLs off they need an
// operator certificate, as the API does; in insecure mode they are open,
// as the API is. Every page is a GET that changes nothing; the two POSTs
// (sign in, sign out) refuse cross-origin requests.
//
// Nothing sensitive is shown: service pages use State.Status and
// State.Preview (redacted and scrubbed), the overview and node pages show
// names, states and times only.

//go:embed ui/templates/*.html ui/static/*
var uiFiles embed.FS

const (
	// uiCookie holds the ACL token of a signed-in browser.
	uiCookie = "dtk_ui_token"
	// uiLiveWait bounds one long-poll of a live fragment.
	uiLiveWait = 25 * time.Second
	// Bounds of the overview's lists.
	uiMaxFailing = 50
	uiMaxDrift   = 20
	// uiMaxValue bounds a value shown in a plan preview.
	uiMaxValue = 300
)

// uiPages are the page templates, each parsed with the layout, on first
// use: an agent (the same binary) never parses them, so its memory holds
// none of them.
var uiPages = sync.OnceValue(func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"overview", "service", "node", "login", "error"} {
		out[name] = template.Must(template.New(name).Funcs(uiFuncs).ParseFS(uiFiles, "ui/templates/layout.html", "ui/templates/"+name+".html"))
	}
	return out
})

var uiFuncs = template.FuncMap{
	"when": func(ms int64) string {
		if ms == 0 {
			return ""
		}
		return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(ms int64) string {
		if ms == 0 {
			return "never"
		}
		d := time.Since(time.UnixMilli(ms))
		switch {
		case d < 0:
			return "just now"
		case d < time.Minute:
			return fmt.Sprintf("%ds ago", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	},
	"dur":   uiDuration,
	"sub":   func(a, b int64) int64 { return a - b },
	"since": func(ms int64) string { return uiDuration(time.Since(time.UnixMilli(ms)).Milliseconds()) },
	"bytes": func(n uint64) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	},
}

func uiDuration(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case ms <= 0:
		return ""
	case d < time.Second:
		return fmt.Sprintf("%dms", ms)
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// uiRoutes adds the dashboard's routes to the API's mux.
func (s *Server) uiRoutes(mux *http.ServeMux) {
	static, _ := fs.Sub(uiFiles, "ui/static")
	files := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	mux.Handle("GET /ui/static/", uiHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	mux.Handle("GET /ui/login", uiHeaders(http.HandlerFunc(s.uiLoginPage)))
	mux.Handle("POST /ui/login", uiHeaders(http.HandlerFunc(s.uiLogin)))
	mux.Handle("POST /ui/logout", uiHeaders(http.HandlerFunc(s.uiLogout)))
	mux.Handle("GET /ui/{$}", s.uiPage(s.uiOverview))
	mux.Handle("GET /ui/services/{name}", s.uiPage(s.uiService))
	mux.Handle("GET /ui/nodes/{name}", s.uiPage(s.uiNode))
	mux.Handle("/ui/", uiHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.uiError(w, r, &api.APIError{Code: http.StatusNotFound, Message: "no such page: " + r.URL.Path})
	})))
}

// uiHeaders sets what every dashboard answer carries: only our own
// scripts and styles, no framing, no referrer, no caching of data.
func uiHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// Why a browser is sent to the login page (a code, never free text, so
// that a crafted link cannot put words on the page).
var uiLoginReasons = map[string]string{
	"missing": "Sign in with an ACL token to see the dashboard.",
	"refused": "That token was refused: it is unknown, expired or malformed.",
	"expired": "Your token stopped working (deleted or expired): sign in again.",
	"out":     "Signed out.",
}

// errUILogin sends the browser to the login page with a reason.
type errUILogin string

func (e errUILogin) Error() string { return uiLoginReasons[string(e)] }

// uiAuth resolves a dashboard request's rights: it returns the request
// with its authorizer attached (none when ACLs are off).
func (s *Server) uiAuth(r *http.Request) (*http.Request, error) {
	c := callerOf(r)
	if c.insecure {
		return r, nil
	}
	if !s.cfg.ACLEnabled {
		if c.operator() {
			return r, nil
		}
		return r, &api.APIError{Code: http.StatusUnauthorized, Message: "ACLs are off on this cluster, so the dashboard needs an operator (client) certificate in the browser; or turn ACLs on and sign in with a token"}
	}
	token := requestToken(r)
	from := "header"
	if token == "" {
		if ck, err := r.Cookie(uiCookie); err == nil {
			token, from = ck.Value, "cookie"
		}
	}
	if token == "" {
		return r, errUILogin("missing")
	}
	// The cookie stands for the header, for these routes only.
	rr := r.Clone(r.Context())
	rr.Header.Set(api.TokenHeader, token)
	az, err := s.resolveACL(rr, c)
	if err != nil {
		s.log.Warn("dashboard request refused", "remote", c.remote, "path", r.URL.Path, "token_from", from, "reason", err)
		return r, errUILogin("expired")
	}
	return r.WithContext(withAuthz(r.Context(), az)), nil
}

func withAuthz(ctx context.Context, az *acl.Authorizer) context.Context {
	return context.WithValue(ctx, authzKey{}, az)
}

// uiPage wraps a page handler: authentication, then the page or an error
// page. A live fragment request that is no longer allowed gets a bare 401
// (the script reloads the page, which lands on the login page).
func (s *Server) uiPage(h handlerFunc) http.Handler {
	return uiHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, err := s.uiAuth(r)
		var login errUILogin
		switch {
		case errors.As(err, &login) && r.URL.Query().Has("fragment"):
			w.WriteHeader(http.StatusUnauthorized)
			return
		case errors.As(err, &login):
			q := url.Values{"why": {string(login)}}
			if r.URL.Path != "/ui/" {
				q.Set("next", r.URL.Path)
			}
			http.Redirect(w, r, "/ui/login?"+q.Encode(), http.StatusSeeOther)
			return
		case err != nil:
			s.uiError(w, r, err)
			return
		}
		if err := h(w, r); err != nil {
			s.uiError(w, r, err)
		}
	}))
}

// --- sign in and out ---

type uiLoginView struct {
	uiChrome
	Message string
	Next    string
	// Mode: "token" (ACLs on), "cert" (ACLs off: a client certificate).
	Mode string
}

func (s *Server) uiLoginPage(w http.ResponseWriter, r *http.Request) {
	if callerOf(r).insecure {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	v := uiLoginView{uiChrome: s.uiChrome(r, "Sign in"), Message: uiLoginReasons[r.URL.Query().Get("why")], Next: uiNext(r.URL.Query().Get("next")), Mode: "token"}
	v.Who = ""
	if !s.cfg.ACLEnabled {
		v.Mode = "cert"
	}
	s.uiRender(w, r, http.StatusOK, "login", &v)
}

// uiNext is a safe place to go after signing in: a dashboard path only.
func uiNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.ContainsAny(next, "\\?#") || strings.Contains(next, "//") {
		return "/ui/"
	}
	return next
}

var uiCrossOrigin = http.NewCrossOriginProtection()

func (s *Server) uiLogin(w http.ResponseWriter, r *http.Request) {
	if err := uiCrossOrigin.Check(r); err != nil {
		s.uiError(w, r, &api.APIError{Code: http.StatusForbidden, Message: "cross-origin sign-in refused"})
		return
	}
	if !s.cfg.ACLEnabled {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := uiNext(r.PostFormValue("next"))
	rr := r.Clone(r.Context())
	rr.Header.Set(api.TokenHeader, token)
	if token == "" {
		http.Redirect(w, r, "/ui/login?why=missing", http.StatusSeeOther)
		return
	}
	if _, err := s.resolveACL(rr, callerOf(r)); err != nil {
		s.log.Warn("dashboard sign-in refused", "remote", callerOf(r).remote, "reason", err)
		http.Redirect(w, r, "/ui/login?"+url.Values{"why": {"refused"}, "next": {next}}.Encode(), http.StatusSeeOther)
		return
	}
	// A session cookie (gone with the browser session); the token's own
	// expiry still applies on every request.
	http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: token, Path: "/ui/", HttpOnly: true,
		Secure: s.cfg.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) uiLogout(w http.ResponseWriter, r *http.Request) {
	if err := uiCrossOrigin.Check(r); err != nil {
		s.uiError(w, r, &api.APIError{Code: http.StatusForbidden, Message: "cross-origin sign-out refused"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: "", Path: "/ui/", MaxAge: -1, HttpOnly: true,
		Secure: s.cfg.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/login?why=out", http.StatusSeeOther)
}

// --- rendering ---

// uiChrome is what the layout shows around every page.
type uiChrome struct {
	Title       string
	Who         string
	Coordinator string
	// ServerVersion is this coordinator's (pages have their own Version).
	ServerVersion string
	IsLeader      bool
	// Index is the state index the page shows; the script asks for the
	// page again past it. Gap is the script's pause between updates (ms).
	Index   uint64
	Gap     int
	Live    bool
	SignOut bool
}

func (s *Server) uiChrome(r *http.Request, title string) uiChrome {
	c := uiChrome{Title: title, Coordinator: s.cfg.Name, ServerVersion: s.cfg.Version, Gap: 1000}
	if s.raft != nil {
		c.IsLeader = s.raft.State() == raftLeader
	}
	if az := authz(r); az != nil {
		c.Who, c.SignOut = az.Name, s.cfg.ACLEnabled
	} else if cl := callerOf(r); !cl.insecure {
		c.Who = cl.String()
	}
	return c
}

// uiRender writes a page, or only its main part for a live fragment.
func (s *Server) uiRender(w http.ResponseWriter, r *http.Request, code int, page string, v any) {
	tmpl := "layout"
	if r.URL.Query().Has("fragment") {
		tmpl = "main"
	}
	var b bytes.Buffer
	b.Grow(64 << 10)
	if err := uiPages()[page].ExecuteTemplate(&b, tmpl, v); err != nil {
		s.log.Error("dashboard template", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

type uiErrorView struct {
	uiChrome
	Code    int
	Message string
}

func (s *Server) uiError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if r.URL.Query().Has("fragment") {
		w.WriteHeader(ae.Code) // the script reloads and shows the full page
		return
	}
	v := uiErrorView{uiChrome: s.uiChrome(r, http.StatusText(ae.Code)), Code: ae.Code, Message: ae.Message}
	s.uiRender(w, r, ae.Code, "error", &v)
}

// uiWait holds a live fragment request until wait returns (the state moved
// past the index the page showed) or uiLiveWait passes.
func uiWait(r *http.Request, wait func(done <-chan struct{}, index uint64)) error {
	q := r.URL.Query()
	if !q.Has("index") {
		return nil
	}
	index, err := strconv.ParseUint(q.Get("index"), 10, 64)
	if err != nil {
		return badRequest("index must be a non-negative integer, got %q", q.Get("index"))
	}
	done, stop := waitDone(r, uiLiveWait)
	defer stop()
	wait(done, index)
	return nil
}

// waitIndex blocks until the state's index passes index or done is closed.
func (s *State) waitIndex(done <-chan struct{}, index uint64) {
	for {
		s.mu.RLock()
		if s.data.Index > index {
			s.mu.RUnlock()
			return
		}
		ch, release := s.watch.wait(anyKey)
		s.mu.RUnlock()
		select {
		case <-ch:
			release()
		case <-done:
			release()
			return
		}
	}
}

// --- the fleet overview ---

type uiOverviewView struct {
	uiChrome
	ShowNodes         bool
	NodesUp           int
	NodesDown         int
	Nodes             []uiNodeRow
	Services          []uiServiceRow
	ByState           []uiCount
	Failing           []uiFailing
	FailingMore       int
	Drift             []uiDrift
	ShowCoordinators  bool
	Coordinators      []uiCoordinator
	Leader            string
	HiddenServices    bool
	ReadableServices  int
	CoordinatorsError string
}

type uiNodeRow struct {
	Name, Status, Version, Address, OS string
	Labels                             []string
	LastSeen                           int64
}

type uiServiceRow struct {
	Name, State, Module, Version, Template, Parent string
	Generation                                     uint64
	// Stale names the exports that changed above it (cascade.go).
	Stale string
}

type uiCount struct {
	State string
	N     int
}

type uiFailing struct {
	Service, Node, Instance, Component, Action, Error string
	ExitCode                                          int
	FinishedAt                                        int64
}

type uiDrift struct {
	Service, Node, StepID string
	FinishedAt            int64
}

type uiCoordinator struct {
	Name, Address, HTTPAddr, Version, Status string
	Voter, Leader                            bool
}

// serviceStates orders the overview's counts.
var serviceStates = []string{plan.StateFailed, plan.StateDeploying, plan.StateDeleting, plan.StateStaged, plan.StateConverged}

func (s *Server) uiOverview(w http.ResponseWriter, r *http.Request) error {
	st := s.State()
	if err := uiWait(r, st.waitIndex); err != nil {
		return err
	}
	v := uiOverviewView{uiChrome: s.uiChrome(r, "Fleet"), ShowNodes: canRead(r, acl.KindNode, ""), ShowCoordinators: canRead(r, acl.KindOperator, "")}
	v.Index, v.Live, v.Gap = st.Index(), true, 2000
	if v.ShowNodes {
		nodes := st.Nodes()
		v.Nodes = make([]uiNodeRow, 0, len(nodes))
		for _, n := range nodes {
			row := uiNodeRow{Name: n.Name, Status: n.Status, Version: n.Facts.AgentVersion, Address: n.Facts.Address, LastSeen: n.LastSeen}
			if n.Facts.OS != "" {
				row.OS = n.Facts.OS + "/" + n.Facts.Arch
			}
			row.Labels = uiLabels(n.Labels)
			if n.Status == plan.NodeUp {
				v.NodesUp++
			} else {
				v.NodesDown++
			}
			v.Nodes = append(v.Nodes, row)
		}
		// Down nodes first: they are what a person looks for.
		sort.SliceStable(v.Nodes, func(i, j int) bool { return v.Nodes[i].Status == plan.NodeDown && v.Nodes[j].Status != plan.NodeDown })
	}
	counts := map[string]int{}
	var failed []string
	for _, svc := range st.Services() {
		if !canRead(r, acl.KindService, svc.Name) {
			v.HiddenServices = true
			continue
		}
		v.Services = append(v.Services, uiServiceRow{Name: svc.Name, State: svc.State, Module: svc.Module, Version: svc.Version,
			Template: svc.Template, Parent: svc.Parent, Generation: svc.Generation, Stale: strings.Join(svc.Stale, ", ")})
		counts[svc.State]++
		if svc.State == plan.StateFailed {
			failed = append(failed, svc.Name)
		}
	}
	v.ReadableServices = len(v.Services)
	for _, state := range serviceStates {
		if counts[state] > 0 {
			v.ByState = append(v.ByState, uiCount{state, counts[state]})
		}
	}
	// Failing steps, from the redacted status of each failed service.
	for _, name := range failed {
		status := st.Status(name)
		if status == nil {
			continue
		}
		for _, n := range status.Nodes {
			for _, step := range n.Steps {
				if step.State != plan.StepFailed {
					continue
				}
				if len(v.Failing) == uiMaxFailing {
					v.FailingMore++
					continue
				}
				v.Failing = append(v.Failing, uiFailing{Service: name, Node: n.Name, Instance: step.Instance, Component: step.Component,
					Action: step.Action, Error: uiShort(step.Error, 200), ExitCode: step.ExitCode, FinishedAt: step.FinishedAt})
			}
		}
	}
	for _, rep := range st.driftRepairs(uiMaxDrift, func(service string) bool { return canRead(r, acl.KindService, service) }) {
		v.Drift = append(v.Drift, uiDrift{Service: rep.Service, Node: rep.Node, StepID: rep.StepID, FinishedAt: rep.FinishedAt})
	}
	if v.ShowCoordinators {
		v.Coordinators, v.Leader, v.CoordinatorsError = s.uiCoordinators()
	}
	w.Header().Set(IndexHeader, strconv.FormatUint(v.Index, 10))
	s.uiRender(w, r, http.StatusOK, "overview", &v)
	return nil
}

// uiCoordinators lists the Raft servers with what gossip says of each.
func (s *Server) uiCoordinators() (out []uiCoordinator, leader, problem string) {
	if s.raft == nil {
		return nil, "", "Raft is not running"
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, "", err.Error()
	}
	leaderAddr, leaderID := s.raft.LeaderWithID()
	gossip := map[string]uiCoordinator{}
	if p := s.getPeers(); p != nil {
		for _, m := range p.Peers() {
			gossip[m.Name] = uiCoordinator{Version: m.Version, Status: m.Status, HTTPAddr: m.HTTPAddr}
		}
	}
	for _, srv := range f.Configuration().Servers {
		c := gossip[string(srv.ID)]
		c.Name, c.Address = string(srv.ID), string(srv.Address)
		c.Voter, c.Leader = srv.Suffrage == raft.Voter, srv.Address == leaderAddr
		if c.Status == "" {
			c.Status = "unknown"
		}
		out = append(out, c)
	}
	return out, string(leaderID), ""
}

// driftRepairs lists the latest reports that repaired drift on services
// keep accepts, newest first: each step's latest run, so a step counts
// once. Names and times only are used (no output).
func (s *State) driftRepairs(max int, keep func(service string) bool) []*plan.Report {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*plan.Report
	for _, rep := range s.data.Reports {
		if rep.Drift && keep(rep.Service) {
			out = append(out, rep)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].FinishedAt != out[j].FinishedAt {
			return out[i].FinishedAt > out[j].FinishedAt
		}
		return out[i].StepID < out[j].StepID
	})
	if len(out) > max {
		out = out[:max]
	}
	return out
}

func uiLabels(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

func uiShort(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// --- a service ---

type uiServiceView struct {
	uiChrome
	Name, State, Module, Version, Template string
	Generation                             uint64
	// Ancestors, root first, and children: the environment tree.
	Ancestors []string
	Parent    string
	Children  []string
	Inputs    []uiKV
	Total     int
	Done      int
	Failed    int
	Running   int
	Percent   int
	Nodes     []uiServiceNode
	NodeLinks bool
	Preview   *uiPreview
	// History is the service's deploy, delete and exec records, newest
	// first (State.History).
	History []api.HistoryRecord
	// Stale names the exports that changed above it since its deploy.
	Stale string
	// Rollout is the service's running or last rollout.
	Rollout *api.RolloutStatus
}

type uiKV struct{ Name, Value string }

type uiServiceNode struct {
	Agent, TemplateNode, Status, Rollout string
	Steps                                []uiStep
}

type uiStep struct {
	Instance, Component, Action, State, Error, Output string
	ExitCode                                          int
	DurationMs, StartedAt, FinishedAt                 int64
	Changed, Drift                                    bool
	Waiting                                           []string
}

type uiPreview struct {
	Generation uint64
	// Notes: the undeployed changes above that the preview assumes.
	Notes      []string
	Violations []string
	Inputs     []uiValue
	Changes    []uiChange
	Unchanged  int
}

type uiValue struct{ Name, Value, Source string }

type uiChange struct {
	Agent, Node, Instance, Component, Action, Change string
	Changed                                          []string
	Attributes                                       []uiValue
	// Reason: why a step the plan leaves unchanged runs (plan.ChangeRun).
	Reason string
}

func (s *Server) uiService(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if !canRead(r, acl.KindService, name) {
		// Not 403: a token without rights does not learn what exists.
		return fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	st := s.State()
	if err := uiWait(r, func(done <-chan struct{}, index uint64) { st.WaitService(done, name, index) }); err != nil {
		return err
	}
	status := st.Status(name)
	if status == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	v := uiServiceView{uiChrome: s.uiChrome(r, name), Name: name, State: status.State, Module: status.Module, Version: status.Version,
		Template: status.Template, Generation: status.Generation, NodeLinks: canRead(r, acl.KindNode, "")}
	v.Index, v.Live = status.Index, true
	v.Stale = strings.Join(status.Stale, ", ")
	for p := status.Parent; p != "" && len(v.Ancestors) < 32; {
		if canRead(r, acl.KindService, p) {
			v.Ancestors = append([]string{p}, v.Ancestors...)
		} else {
			v.Ancestors = append([]string{"(hidden)"}, v.Ancestors...)
		}
		svc := st.Service(p)
		if svc == nil {
			break
		}
		p = svc.Parent
	}
	if len(v.Ancestors) > 0 {
		v.Parent = v.Ancestors[len(v.Ancestors)-1]
	}
	for _, svc := range st.Services() {
		if svc.Parent == name && canRead(r, acl.KindService, svc.Name) {
			v.Children = append(v.Children, svc.Name)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(status.Inputs)) {
		v.Inputs = append(v.Inputs, uiKV{k, status.Inputs[k]})
	}
	started := st.stepStarts(name)
	for _, n := range status.Nodes {
		sn := uiServiceNode{Agent: n.Name, TemplateNode: n.TemplateNode, Status: n.Status, Rollout: n.Rollout}
		for _, step := range n.Steps {
			v.Total++
			switch step.State {
			case plan.StepOK, plan.StepSkipped:
				v.Done++
			case plan.StepFailed:
				v.Failed++
			case plan.StepRunning:
				v.Running++
			}
			sn.Steps = append(sn.Steps, uiStep{Instance: step.Instance, Component: step.Component, Action: step.Action, State: step.State,
				Error: step.Error, Output: step.Output, ExitCode: step.ExitCode, DurationMs: step.DurationMs, StartedAt: started[step.ID],
				FinishedAt: step.FinishedAt, Changed: step.Changed, Drift: step.Drift, Waiting: step.Waiting})
		}
		v.Nodes = append(v.Nodes, sn)
	}
	if v.Total > 0 {
		v.Percent = 100 * v.Done / v.Total
	}
	if status.State != plan.StateDeleting {
		v.Preview = uiPreviewOf(st.Preview(name))
	}
	v.History, _ = st.History(name)
	v.Rollout = status.Rollout
	w.Header().Set(IndexHeader, strconv.FormatUint(v.Index, 10))
	s.uiRender(w, r, http.StatusOK, "service", &v)
	return nil
}

// stepStarts is when each step of a service's current plan last started.
func (s *State) stepStarts(service string) map[string]int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]int64{}
	svc := s.data.Services[service]
	if svc == nil || svc.Plan == nil {
		return out
	}
	for _, np := range svc.Plan.Nodes {
		for _, step := range np.Steps {
			if rep := s.data.Reports[step.ID]; rep != nil && rep.StartedAt != 0 {
				out[step.ID] = rep.StartedAt
			}
		}
	}
	return out
}

// uiPreviewOf shows a (redacted) plan preview: what the next deploy would
// change, each value with where it comes from.
func uiPreviewOf(pv *api.PlanPreview) *uiPreview {
	if pv == nil {
		return nil
	}
	out := &uiPreview{Generation: pv.Generation, Notes: pv.Notes}
	for _, viol := range pv.Violations {
		out.Violations = append(out.Violations, viol.String())
	}
	for _, in := range pv.Inputs {
		out.Inputs = append(out.Inputs, uiValueOf(in))
	}
	for _, n := range pv.Nodes {
		for _, d := range n.Steps {
			if d.Change == plan.ChangeUnchanged {
				out.Unchanged++
				continue
			}
			c := uiChange{Agent: n.Agent, Node: n.Name, Instance: d.Instance, Component: d.Component, Action: d.Action, Change: d.Change, Changed: d.Changed, Reason: d.Reason}
			for _, a := range d.Attributes {
				c.Attributes = append(c.Attributes, uiValueOf(a))
			}
			out.Changes = append(out.Changes, c)
		}
	}
	return out
}

func uiValueOf(v *plan.Value) uiValue {
	text := string(v.Value)
	var str string
	if json.Unmarshal(v.Value, &str) == nil {
		text = str
	}
	if v.Sensitive {
		text = redactedText
	}
	return uiValue{Name: v.Name, Value: uiShort(text, uiMaxValue), Source: v.Source}
}

// --- a node ---

type uiNodeView struct {
	uiChrome
	Name, Status, Version, Address, OS, Hostname string
	CPUs                                         int
	Memory                                       uint64
	Labels, AgentLabels, OperatorLabels          []string
	RegisteredAt, LastSeen                       int64
	Services                                     []uiNodeService
}

type uiNodeService struct {
	Name, State, TemplateNode string
	Steps                     []uiStep
}

func (s *Server) uiNode(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if !canRead(r, acl.KindNode, "") {
		return &api.APIError{Code: http.StatusForbidden, Message: "this token lacks node read: ask for a policy with node { policy = \"read\" }"}
	}
	st := s.State()
	if err := uiWait(r, st.waitIndex); err != nil {
		return err
	}
	n := st.Node(name)
	if n == nil {
		return fmt.Errorf("%w: node %q", ErrNotFound, name)
	}
	v := uiNodeView{uiChrome: s.uiChrome(r, name), Name: n.Name, Status: n.Status, Version: n.Facts.AgentVersion, Address: n.Facts.Address,
		Hostname: n.Facts.Hostname, CPUs: n.Facts.CPUs, Memory: n.Facts.MemoryBytes, Labels: uiLabels(n.Labels),
		AgentLabels: uiLabels(n.AgentLabels), OperatorLabels: uiLabels(n.OperatorLabels), RegisteredAt: n.RegisteredAt, LastSeen: n.LastSeen}
	if n.Facts.OS != "" {
		v.OS = n.Facts.OS + "/" + n.Facts.Arch
	}
	v.Index, v.Live, v.Gap = st.Index(), true, 2000
	for _, svc := range st.Services() {
		if svc.Plan == nil || !canRead(r, acl.KindService, svc.Name) || !slices.ContainsFunc(svc.Plan.Nodes, func(np *plan.NodePlan) bool { return np.Agent == name }) {
			continue
		}
		status := st.Status(svc.Name)
		if status == nil {
			continue
		}
		started := st.stepStarts(svc.Name)
		for _, ns := range status.Nodes {
			if ns.Name != name {
				continue
			}
			us := uiNodeService{Name: svc.Name, State: status.State, TemplateNode: ns.TemplateNode}
			for _, step := range ns.Steps {
				us.Steps = append(us.Steps, uiStep{Instance: step.Instance, Component: step.Component, Action: step.Action, State: step.State,
					Error: step.Error, ExitCode: step.ExitCode, DurationMs: step.DurationMs, StartedAt: started[step.ID], FinishedAt: step.FinishedAt,
					Changed: step.Changed, Drift: step.Drift})
			}
			v.Services = append(v.Services, us)
		}
	}
	w.Header().Set(IndexHeader, strconv.FormatUint(v.Index, 10))
	s.uiRender(w, r, http.StatusOK, "node", &v)
	return nil
}
