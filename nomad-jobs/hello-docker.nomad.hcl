# A renter's container job: runs the image spiceroute/hello:dev, built
# locally from nomad-jobs/hello-image by deploy/scripts/build-hello-image.sh
# (on a contributor's machine the image must be present or pullable).
#   NOMAD_ADDR=http://127.0.0.1:7070 NOMAD_TOKEN=<your SpiceRoute token> nomad job run nomad-jobs/hello-docker.nomad.hcl
job "hello-docker" {
  type = "batch"

  meta {
    spiceroute_max_runtime = "10m"
  }

  group "hello" {
    ephemeral_disk {
      size = 150 # MB
    }

    task "hello" {
      driver = "docker"

      config {
        image      = "spiceroute/hello:dev"
        force_pull = false
        args       = ["3s"]
      }

      resources {
        cpu    = 100 # MHz
        memory = 64  # MB
      }
    }
  }
}
