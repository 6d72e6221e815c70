# Nomad client of a SpiceRoute contributor machine, written by `spice agent`
# (agent/nomadclient). The client introduction token is not in this file:
# it comes from the environment (NOMAD_CLIENT_INTRO_TOKEN).
name                 = "contrib-7f3a"
datacenter           = "eu-west-1"
data_dir             = "/var/lib/spiceroute-agent/nomad"
log_level            = "INFO"
log_file             = "/var/lib/spiceroute-agent/nomad.log"
log_rotate_bytes     = 10485760
log_rotate_max_files = 3
disable_update_check = true

addresses {
  http = "127.0.0.1"
}

advertise {
  http = "127.0.0.1"
}

ports {
  http = 4656
}

acl {
  enabled = true
}

server {
  enabled = false
}

client {
  enabled   = true
  servers   = ["hub.example.org:4647", "10.0.0.2:4647"]
  node_pool = "spiceroute"
  alloc_dir = "/var/lib/spiceroute-agent/nomad/alloc"

  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }

  reserved {
    cpu    = 500
    memory = 1024
  }

  meta {
    "spiceroute_agent_version" = "0.1.0"
    "spiceroute_contributor_account" = "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    "spiceroute_floor_cpu_core_hour" = "30469"
    "spiceroute_region" = "eu-west"
  }

  chroot_env {
    "/bin" = "/bin"
    "/lib64" = "/lib64"
    "/usr/bin" = "/usr/bin"
  }
}

# Renters' tasks never run unisolated on the owner's machine.
plugin "raw_exec" {
  config {
    enabled = false
  }
}
