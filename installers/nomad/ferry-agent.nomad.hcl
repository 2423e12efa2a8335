# A Ferry gateway agent as a Nomad service job: one agent that drives Nomad jobs (and ECS services, SSH/WinRM hosts)
# through their APIs; it needs no host of its own. Its identity lives in a host volume so a rescheduled agent keeps
# it. The ACL token comes from Nomad Variables through a template, into a file the agent reads at every call.
job "ferry-agent" {
  type = "service"

  group "agent" {
    count = 1

    volume "state" {
      type   = "host"
      source = "ferry-agent-state"
    }

    task "agent" {
      driver = "docker"
      user   = "10001:10001"

      config {
        image = "registry.example.com/ferry-agent@sha256:0000000000000000000000000000000000000000000000000000000000000000"
      }

      volume_mount {
        volume      = "state"
        destination = "/var/lib/ferry-agent"
      }

      env {
        FERRY_AGENT_NAME                    = "nomad-gateway"
        FERRY_AGENT_DRIVER_DOCKER_ENABLED   = "false"
        FERRY_AGENT_DRIVER_NOMAD_ENABLED    = "true"
        FERRY_AGENT_DRIVER_NOMAD_ADDRESS    = "https://nomad.service.consul:4646"
        FERRY_AGENT_DRIVER_NOMAD_TOKEN_FILE = "/secrets/nomad-token"
        FERRY_AGENT_DRIVER_NOMAD_CA_FILE    = "/secrets/nomad-ca.pem"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/ferry-agent\" }}{{ .nomad_token }}{{ end }}"
        destination = "secrets/nomad-token"
        perms       = "0400"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/ferry-agent\" }}{{ .nomad_ca }}{{ end }}"
        destination = "secrets/nomad-ca.pem"
        perms       = "0400"
      }

      # Read on the first start only; a join string is single-use.
      template {
        data        = "FERRY_JOIN={{ with nomadVar \"nomad/jobs/ferry-agent\" }}{{ .join }}{{ end }}"
        destination = "secrets/join.env"
        env         = true
      }

      kill_timeout = "120s"

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
