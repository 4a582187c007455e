package signing

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// SigFile is the name of a module's signature, at the root of its folder.
const SigFile = "dtk.sig"

// SigVersion is the version of the dtk.sig format this code writes and
// reads.
const SigVersion = 1

// MaxSigBytes bounds a dtk.sig file (it lists every file of the module:
// about 150 bytes a file).
const MaxSigBytes = 64 << 20

// Signature is a module's dtk.sig.
type Signature struct {
	Version       int    `json:"version"`
	KeyID         string `json:"key_id"`
	Signer        string `json:"signer"`
	Algorithm     string `json:"algorithm"`
	Module        string `json:"module"`
	ModuleVersion string `json:"module_version"`
	// SignedAt is RFC 3339, as written (it is signed as text).
	SignedAt string `json:"signed_at"`
	// Files maps the slash-separated path of every file of the module but
	// dtk.sig to "sha256:<hex>" of its content.
	Files map[string]string `json:"files"`
	// Signature is the standard base64 of the Ed25519 signature of the
	// payload.
	Signature string `json:"signature"`
}

// Ref is MODULE@VERSION.
func (s *Signature) Ref() string { return s.Module + "@" + s.ModuleVersion }

// payload is what the signature covers: "dtk-module-signature-v1\n" and
// every field but signature.
func (s *Signature) payload() []byte {
	files := s.Files
	if files == nil {
		files = map[string]string{}
	}
	return payload("module", map[string]any{
		"version": s.Version, "key_id": s.KeyID, "signer": s.Signer, "algorithm": s.Algorithm,
		"module": s.Module, "module_version": s.ModuleVersion, "signed_at": s.SignedAt, "files": files,
	})
}

// Payload is the exact bytes the signature is over, for verifying with
// other tools (openssl pkeyutl -verify -rawin).
func (s *Signature) Payload() []byte { return s.payload() }

// SignModule signs module@version made of files (path → "sha256:<hex>";
// an entry for dtk.sig itself is left out). signer "" takes the key's.
func SignModule(k *PrivateKey, signer, module, version string, files map[string]string, at time.Time) (*Signature, error) {
	if signer == "" {
		signer = k.Signer
	}
	s := &Signature{
		Version: SigVersion, KeyID: k.id, Signer: signer, Algorithm: Algorithm,
		Module: module, ModuleVersion: version, SignedAt: at.UTC().Format(time.RFC3339), Files: map[string]string{},
	}
	for p, d := range files {
		if p != SigFile {
			s.Files[p] = d
		}
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("sign %s@%s: %w", module, version, err)
	}
	s.Signature = base64.StdEncoding.EncodeToString(k.sign(s.payload()))
	return s, nil
}

// Marshal is the dtk.sig file: indented JSON and a newline.
func (s *Signature) Marshal() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		panic("signing: encode dtk.sig: " + err.Error())
	}
	return b.Bytes()
}

// check validates every field but the signature's bytes.
func (s *Signature) check() error {
	if s.Version != SigVersion {
		return fmt.Errorf("version %d is not supported (this dtk reads version %d)", s.Version, SigVersion)
	}
	if s.Algorithm != Algorithm {
		return fmt.Errorf("algorithm %q is not supported (only %q)", s.Algorithm, Algorithm)
	}
	if err := checkKeyID(s.KeyID); err != nil {
		return err
	}
	if s.Module == "" || s.ModuleVersion == "" {
		return errors.New("module and module_version must both be set")
	}
	for what, v := range map[string]string{"signer": s.Signer, "module": s.Module, "module_version": s.ModuleVersion} {
		if err := checkText(what, v); err != nil {
			return err
		}
	}
	if _, err := time.Parse(time.RFC3339, s.SignedAt); err != nil {
		return fmt.Errorf("signed_at %q is not an RFC 3339 time", s.SignedAt)
	}
	if len(s.Files) == 0 {
		return errors.New("files is empty: a signature lists every file of the module")
	}
	for p, d := range s.Files {
		switch {
		case p == "" || p == SigFile:
			return fmt.Errorf("files lists %q, which is not a file a signature covers", p)
		case path.Clean(p) != p || path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../"):
			return fmt.Errorf("files lists %q, which is not a clean relative path", p)
		}
		if err := checkText("file name", p); err != nil {
			return err
		}
		if err := checkDigest(d); err != nil {
			return fmt.Errorf("file %q: %w", p, err)
		}
	}
	return nil
}

// checkDigest checks "sha256:" and 64 lowercase hex digits.
func checkDigest(d string) error {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || strings.ToLower(h) != h {
		return fmt.Errorf("digest %q is not sha256:<64 lowercase hex digits>", d)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Errorf("digest %q is not sha256:<64 lowercase hex digits>", d)
	}
	return nil
}

// ParseSignature reads a dtk.sig strictly: unknown fields, trailing data,
// a missing field or a signature that is not 64 bytes of base64 are
// errors.
func ParseSignature(b []byte) (*Signature, error) {
	if len(b) > MaxSigBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", SigFile, len(b), MaxSigBytes)
	}
	var s Signature
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s is not well-formed JSON: %v", SigFile, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s is not well-formed: data after the JSON object", SigFile)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", SigFile, err)
	}
	if raw, err := base64.StdEncoding.DecodeString(s.Signature); err != nil || len(raw) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%s: signature is not the base64 of a %d-byte Ed25519 signature", SigFile, ed25519.SignatureSize)
	}
	return &s, nil
}

// VerifyModule checks the dtk.sig raw of module@version whose files are
// files (path → digest; an entry for dtk.sig itself is ignored) against
// keys. In order: it is well-formed, its key is in keys, the signature
// holds for that key, it is for this module and version, and it lists
// exactly these files with these digests. It returns the parsed signature
// whenever it could be read (also with ErrUntrusted and ErrInvalid
// errors, for messages), and an *Error.
func VerifyModule(raw []byte, module, version string, files map[string]string, keys *Keyring) (*Signature, error) {
	if raw == nil {
		return nil, failure(ErrUnsigned, "%s@%s is not signed (no %s)", module, version, SigFile)
	}
	s, err := ParseSignature(raw)
	if err != nil {
		return nil, failure(ErrInvalid, "%v", err)
	}
	candidates := keys.lookup(s.KeyID)
	if len(candidates) == 0 {
		return s, failure(ErrUntrusted, "%s@%s is signed by %s, which is not a trusted key", s.Module, s.ModuleVersion, Describe(s.KeyID, s.Signer))
	}
	sig, _ := base64.StdEncoding.DecodeString(s.Signature)
	p := s.payload()
	ok := false
	for _, k := range candidates {
		ok = ok || k.verify(p, sig)
	}
	if !ok {
		return s, failure(ErrInvalid, "the signature in %s does not verify with %s: %s was changed after it was signed",
			SigFile, Describe(s.KeyID, s.Signer), SigFile)
	}
	if s.Module != module || s.ModuleVersion != version {
		return s, failure(ErrInvalid, "%s signs %s, but this is %s@%s: sign this module itself (dtkctl module sign)", SigFile, s.Ref(), module, version)
	}
	if diff := diffFiles(s.Files, files); diff != "" {
		return s, failure(ErrInvalid, "the files differ from what %s signed: %s; sign the module again (dtkctl module sign)",
			Describe(s.KeyID, s.Signer), diff)
	}
	return s, nil
}

// Diff says how files (path → digest; dtk.sig ignored) differ from the
// files the signature lists: "" when they are the same, else which files
// changed, were added and were removed. It checks nothing else: a
// signature that lists the right files may still not hold.
func (s *Signature) Diff(files map[string]string) string { return diffFiles(s.Files, files) }

// diffFiles says how have differs from signed ("" when they are the
// same), naming at most a few files of each kind.
func diffFiles(signed, have map[string]string) string {
	var changed, added, removed []string
	for p, d := range have {
		if p == SigFile {
			continue
		}
		switch sd, ok := signed[p]; {
		case !ok:
			added = append(added, p)
		case sd != d:
			changed = append(changed, p)
		}
	}
	for p := range signed {
		if _, ok := have[p]; !ok {
			removed = append(removed, p)
		}
	}
	var parts []string
	for _, g := range []struct {
		what  string
		files []string
	}{{"changed", changed}, {"added", added}, {"removed", removed}} {
		if len(g.files) == 0 {
			continue
		}
		sort.Strings(g.files)
		list := g.files
		more := ""
		if len(list) > 5 {
			list, more = list[:5], fmt.Sprintf(" and %d more", len(g.files)-5)
		}
		parts = append(parts, g.what+" "+strings.Join(list, ", ")+more)
	}
	return strings.Join(parts, "; ")
}

// DirFiles is the digest of every regular file under dir, dot-folders
// included (an archive unpacked by a coordinator holds only what it
// carried, and a signature covers all of it). Digests already in known
// (slash-separated paths, as plan.Module.Files) are taken as they are; the
// other files are hashed.
func DirFiles(dir string, known map[string]string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if dg, ok := known[rel]; ok {
			files[rel] = dg
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		files[rel] = "sha256:" + hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return files, err
}

// ArchiveFiles reads a module archive (tar.gz) as a stream and returns the
// digest of every file in it and the content of its dtk.sig (nil when it
// has none), without writing anything. Entries are read as archive.Unpack
// reads them (cleaned paths, a later entry of the same name replacing an
// earlier one); maxFiles and maxTotal bound the entries and the bytes
// they unpack to.
func ArchiveFiles(r io.Reader, maxFiles int, maxTotal int64) (map[string]string, []byte, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("not a gzip archive: %w", err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	var sig []byte
	var total int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, sig, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read archive: %w", err)
		}
		if n >= maxFiles {
			return nil, nil, fmt.Errorf("the archive holds more than %d entries", maxFiles)
		}
		name := path.Clean(hdr.Name)
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		if name == "." || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return nil, nil, fmt.Errorf("unsafe archive entry %q", hdr.Name)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, nil, fmt.Errorf("archive entry %q is not a regular file", hdr.Name)
		}
		if total += hdr.Size; total > maxTotal {
			return nil, nil, fmt.Errorf("the archive unpacks to more than %d bytes", maxTotal)
		}
		h := sha256.New()
		var w io.Writer = h
		var buf bytes.Buffer
		if name == SigFile {
			if hdr.Size > MaxSigBytes {
				return nil, nil, fmt.Errorf("%s is %d bytes, more than %d", SigFile, hdr.Size, MaxSigBytes)
			}
			w = io.MultiWriter(h, &buf)
		}
		if _, err := io.Copy(w, tr); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", name, err)
		}
		files[name] = "sha256:" + hex.EncodeToString(h.Sum(nil))
		if name == SigFile {
			sig = buf.Bytes()
		}
	}
}
