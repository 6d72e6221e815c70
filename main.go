// Command spice is SpiceRoute's one binary: the hub, the contributor agent,
// the dev stack and the command-line client (`spice -h` lists commands).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spiceroute/spiceroute/hub/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
