// Package names is the one rule for the names of nodes, services,
// policies and certificate identities: 1 to 63 lowercase letters, digits,
// '.', '_' and '-', starting with a letter or digit. It is checked by hand
// rather than by a regular expression, which for the {0,62} repetition
// costs tens of kilobytes at every process start.
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
