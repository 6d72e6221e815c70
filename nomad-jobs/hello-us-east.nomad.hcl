# hello, for a renter who wants a machine near us-east and will pay up to
# 0.06 SP per core-hour for it. The hub adds the matching Nomad sees:
#   - a constraint: only machines whose floor is at or below 0.06 SP/core-hour;
#   - affinities: machines in us-east, and machines under 50 ms from it.
# Each allocation pays the hub's CPU price or its machine's floor, whichever
# is higher, never more than the 0.06 it accepts. In `make dev`, dave's
# machine (us-east, floor 0.05) gets it; hello.nomad.hcl, which accepts the
# hub's price (0.04), can only run on carol's (eu-west, floor 0.03).
#   spice job quote nomad-jobs/hello-us-east.nomad.hcl
#   spice job run nomad-jobs/hello-us-east.nomad.hcl
job "hello-us-east" {
  type = "batch"

  meta {
    spiceroute_max_runtime   = "10m"
    spiceroute_max_cpu_price = "0.06"    # SP per core-hour, at most
    spiceroute_region        = "us-east" # preferred, not required
  }

  group "hello" {
    ephemeral_disk {
      size = 150
    }

    task "hello" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo hello from ${node.unique.name}; sleep 3"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
