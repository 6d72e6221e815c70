# A renter's first job: prints a greeting and the contributor's kernel, works
# for three seconds and exits. Run it with the stock nomad CLI pointed at a hub:
#   NOMAD_ADDR=http://127.0.0.1:7070 NOMAD_TOKEN=<your SpiceRoute token> nomad job run nomad-jobs/hello.nomad.hcl
job "hello" {
  type = "batch"

  meta {
    spiceroute_max_runtime = "10m" # the hub holds the price of 10 minutes; you pay for what runs
  }

  group "hello" {
    count = 1

    ephemeral_disk {
      size = 150 # MB; must exceed the task logs (10 files x 10 MB)
    }

    task "hello" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo hello from SpiceRoute; uname -s; sleep 3"]
      }

      resources {
        cpu    = 100 # MHz
        memory = 64  # MB
      }
    }
  }
}
