package bench

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/dtkhq/dtk/coordinator"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/hashicorp/raft"
)

// BenchmarkACLTokenLookup is the state half of resolving a request's
// token, in-process: the SHA-256 of the secret and State.ACLTokenByHash
// (a scan over every token), with 1 and 10,000 tokens in the state (the
// coordinator's limit). "found" looks up the last token created (map
// order decides where the scan meets it); "unknown" a secret no token has,
// which scans them all.
//
//	go test -run '^$' -bench ACLTokenLookup ./bench/
func BenchmarkACLTokenLookup(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			fsm := coordinator.NewFSM(slog.New(slog.DiscardHandler))
			idx := uint64(0)
			apply := func(t coordinator.MessageType, cmd any) {
				data, err := coordinator.Encode(t, cmd)
				if err != nil {
					b.Fatal(err)
				}
				idx++
				if r := fsm.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data}); r != nil {
					if err, ok := r.(error); ok {
						b.Fatal(err)
					}
				}
			}
			tok := func(i int) (string, api.ACLToken) {
				secretText := fmt.Sprintf("dtkacl-bench-%06d", i)
				h := coordinator.TokenHash(secretText)
				return secretText, api.ACLToken{AccessorID: h[:16], SecretHash: h, Management: true}
			}
			secretText, t := tok(0)
			apply(coordinator.ACLBootstrapType, coordinator.ACLBootstrapCmd{Token: t})
			for i := 1; i < n; i++ {
				secretText, t = tok(i)
				apply(coordinator.ACLTokenType, coordinator.ACLTokenCmd{Token: t})
			}
			st := fsm.State()
			if len(st.ACLTokens()) != n {
				b.Fatalf("%d tokens, want %d", len(st.ACLTokens()), n)
			}
			b.Run("found", func(b *testing.B) {
				for b.Loop() {
					if st.ACLTokenByHash(coordinator.TokenHash(secretText)) == nil {
						b.Fatal("token not found")
					}
				}
			})
			// A wrong or deleted token scans every token.
			b.Run("unknown", func(b *testing.B) {
				for b.Loop() {
					if st.ACLTokenByHash(coordinator.TokenHash("dtkacl-no-such-token")) != nil {
						b.Fatal("found a token that does not exist")
					}
				}
			})
		})
	}
}
