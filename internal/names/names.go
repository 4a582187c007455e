// Package names is the one rule for the names of nodes, services,
// policies and certificate identities: 1 to 63 lowercase letters, digits,
// '.', '_' and '-', starting with a letter or digit. It is checked by hand
// rather than by a regular expression, which for the {0,62} repetition
// costs tens of kilobytes at every process start. The other identifiers
// that both the configuration and the DSL check (accounts, label keys) are
// checked by hand here for the same reason.
package names

// MaxLen is the longest valid name.
const MaxLen = 63

// Valid reports whether s is a valid name.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// MaxAccountLen is the longest valid user or group name (ValidAccount),
// not counting a trailing '$'.
const MaxAccountLen = 64

// ValidAccount reports whether s is a valid user or group name, as a step
// may run as (step_user, step_group, an action's user and group): 1 to 64
// letters, digits, '_', '.' and '-', starting with a letter or '_', and
// optionally a final '$' (Samba machine accounts). It is the rule
// `^[A-Za-z_][A-Za-z0-9_.-]{0,63}\$?$`.
func ValidAccount(s string) bool {
	if n := len(s); n > 1 && s[n-1] == '$' {
		s = s[:n-1]
	}
	if len(s) == 0 || len(s) > MaxAccountLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// MaxLabelKeyLen is the longest valid node label key.
const MaxLabelKeyLen = 63

// ValidLabelKey reports whether s is a valid node label key, usable in
// templates (labels = { k = "v" }) and on the command line (--label
// k=v): 1 to 63 letters, digits, '.', '_' and '-', starting with a
// letter. It is the rule `^[A-Za-z][A-Za-z0-9_.-]{0,62}$`.
func ValidLabelKey(s string) bool {
	if len(s) == 0 || len(s) > MaxLabelKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}
