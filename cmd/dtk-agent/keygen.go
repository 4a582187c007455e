package main

import (
	"fmt"
	"io"

	"github.com/dtkhq/dtk/internal/secret"
)

// keygenCmd prints a new key: 32 random bytes, base64. The same format
// serves as a gossip key (encrypt) and as a key-encryption key
// (keyring_file).
type keygenCmd struct{}

func (keygenCmd) Run(out io.Writer) error {
	k, err := secret.GenerateKey()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, k)
	return err
}
