# SpiceRoute hub admission policy: what a renter's job may ask for before it
# reaches Nomad. The hub loads this file at start (spice hub -policy FILE);
# a violation is rejected with the rule's name and the offending task.

# Task drivers renters may use. raw_exec is never allowed: the hub refuses a
# policy that lists it.
allowed_drivers = ["exec", "docker"]

# Nomad job types. system and sysbatch would run on every contributor.
allowed_job_types = ["batch", "service"]

# How long a job may run. A job states its own limit in meta
# "spiceroute_max_runtime" (e.g. "2h"); without one it gets default_runtime.
default_runtime = "1h"
max_runtime     = "72h"

# Caps on one job: summed over every task of every instance (count).
job {
  max_instances = 20
  max_cpu_mhz   = 16000
  max_memory_mb = 32768
  max_disk_mb   = 102400
}

# Caps on everything one renter runs at once, this job included.
renter {
  max_jobs      = 50
  max_cpu_mhz   = 32000
  max_memory_mb = 65536
}
