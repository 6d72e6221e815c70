package translog_test

import (
	"context"
	"fmt"
	"log"

	"github.com/spiceroute/spiceroute/hub/translog"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The checkpoint a hub serves at /log/checkpoint: a c2sp.org/tlog-checkpoint
// (origin, tree size, base64 RFC 6962 root hash) signed as a
// c2sp.org/signed-note. Ed25519 signatures are deterministic, so the output
// is fixed for this (test-only) key.
func ExampleLog_Checkpoint() {
	ctx := context.Background()
	signer, err := note.NewSigner("PRIVATE+KEY+hub.example.org/log+456698c0+AWiueNgmF37UEpmGCj2Sl3jEgTUS7Q6n5BaZ3cOTs/z4")
	if err != nil {
		log.Fatal(err)
	}
	st := new(translog.MemStorage)
	app, err := translog.NewAppender(ctx, 0, nil)
	if err != nil {
		log.Fatal(err)
	}

	// The ledger commits a batch...
	batch, err := app.Append([][]byte{[]byte("a"), []byte("b"), []byte("c")})
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Commit(batch); err != nil {
		log.Fatal(err)
	}
	root, err := app.TreeHash()
	if err != nil {
		log.Fatal(err)
	}

	// ...and the log signs and serves it.
	l := translog.New(st, signer)
	if err := l.Publish(ctx, tlog.Tree{N: app.Size(), Hash: root}); err != nil {
		log.Fatal(err)
	}
	signed, _, err := l.Checkpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", signed)

	c, err := translog.VerifyCheckpoint(signed, "hub.example.org/log+456698c0+AYvM3CbV+CX1zYXaAQYRPxk9AQXGTUZRPhDWztAk9qRy")
	fmt.Println("verified:", c.Origin, c.N, err)
	// Output:
	// hub.example.org/log
	// 3
	// NmQuc8JUCrEh46a/lUWwokmCzYMOsT080Z3jzmwCHsE=
	//
	// — hub.example.org/log RWaYwE3fAydRTaI6xwnQkP1Vrnd2eQI0XV8/d8nsc3m+ixBE4cj4JvdGfO66AHrSrNJIqW8spnDKPaj4SIpiesJcDAY=
	// verified: hub.example.org/log 3 <nil>
}
