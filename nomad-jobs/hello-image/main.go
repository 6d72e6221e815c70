// Command hello is the example renter container image: a static binary in
// an image built FROM scratch (see Dockerfile and
// deploy/scripts/build-hello-image.sh), run by nomad-jobs/hello-docker.nomad.hcl.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	host, _ := os.Hostname()
	fmt.Printf("hello from a SpiceRoute container on %s\n", host)
	d := 3 * time.Second
	if len(os.Args) > 1 {
		v, err := time.ParseDuration(os.Args[1])
		if err != nil {
			fmt.Fprintf(os.Stderr, "hello: %v\n", err)
			os.Exit(2)
		}
		d = v
	}
	time.Sleep(d)
	fmt.Println("done")
}
