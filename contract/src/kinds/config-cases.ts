// One table of target-config cases, run by both sides' tests: the control plane's check when a target is created
// (control-plane catalog tests) and the agent's check before a task runs (agent task-runner tests). A case the two
// sides judged differently would fail one of them. `field` is the path the refusal must name.
export interface TargetConfigCase {
  kind: string;
  name: string;
  config: unknown;
  /** undefined: valid. Otherwise the field the refusal names. */
  field?: string;
}

const HEALTHY = { container: "web" };
const SSH = { host: "10.0.0.5", user: "deploy", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" };

export const TARGET_CONFIG_CASES: readonly TargetConfigCase[] = [
  { kind: "docker", name: "the minimum", config: HEALTHY },
  {
    kind: "docker",
    name: "every field",
    config: {
      container: "shop-web.1",
      component: "web",
      socketPath: "/run/docker.sock",
      network: "host",
      command: ["httpd", "-f"],
      env: { PORT: "8080", _X: "y" },
      ports: [{ container: 80, host: 8080, protocol: "tcp" }],
      volumes: [{ source: "/srv/data", target: "/data", readOnly: true }],
      healthCheck: { type: "http", url: "http://127.0.0.1:8080/health", timeoutSeconds: 30, intervalSeconds: 2, settleSeconds: 5 },
    },
  },
  { kind: "docker", name: "container missing", config: {}, field: "config.container" },
  { kind: "docker", name: "container not a Docker name", config: { container: "-web" }, field: "config.container" },
  { kind: "docker", name: "container with the parking marker", config: { container: "web.ferry-old-1" }, field: "config.container" },
  { kind: "docker", name: "a misspelt field", config: { contianer: "web" }, field: "config.contianer" },
  { kind: "docker", name: "a NUL byte", config: { container: "web", network: "ho\0st" }, field: "config.network" },
  { kind: "docker", name: "relative socket path", config: { container: "web", socketPath: "docker.sock" }, field: "config.socketPath" },
  { kind: "docker", name: "empty command", config: { container: "web", command: [] }, field: "config.command" },
  { kind: "docker", name: "bad env name", config: { container: "web", env: { "1X": "a" } }, field: "config.env.1X" },
  { kind: "docker", name: "env value not a string", config: { container: "web", env: { X: 1 } }, field: "config.env.X" },
  { kind: "docker", name: "port out of range", config: { container: "web", ports: [{ container: 70000 }] }, field: "config.ports[0].container" },
  { kind: "docker", name: "port protocol", config: { container: "web", ports: [{ container: 80, protocol: "sctp" }] }, field: "config.ports[0].protocol" },
  { kind: "docker", name: "volume source with a colon", config: { container: "web", volumes: [{ source: "/a:b", target: "/data" }] }, field: "config.volumes[0].source" },
  { kind: "docker", name: "volume target relative", config: { container: "web", volumes: [{ source: "data", target: "data" }] }, field: "config.volumes[0].target" },
  { kind: "docker", name: "http check without url", config: { container: "web", healthCheck: { type: "http" } }, field: "config.healthCheck.url" },
  { kind: "docker", name: "tcp check without port", config: { container: "web", healthCheck: { type: "tcp" } }, field: "config.healthCheck.port" },
  { kind: "docker", name: "check url not http", config: { container: "web", healthCheck: { type: "http", url: "ftp://x/" } }, field: "config.healthCheck.url" },
  { kind: "docker", name: "unknown check type", config: { container: "web", healthCheck: { type: "exec" } }, field: "config.healthCheck.type" },
  { kind: "docker", name: "settle window too long", config: { container: "web", healthCheck: { type: "none", settleSeconds: 601 } }, field: "config.healthCheck.settleSeconds" },
  { kind: "docker", name: "timeout not whole", config: { container: "web", healthCheck: { type: "none", timeoutSeconds: 1.5 } }, field: "config.healthCheck.timeoutSeconds" },
  { kind: "docker", name: "config not an object", config: ["web"], field: "config" },
  { kind: "docker", name: "a route", config: { container: "web", route: { service: "web", listen: "127.0.0.1:8080", slots: { blue: 8081, green: 8082 }, portEnv: "HTTP_PORT", drainSeconds: 5 } } },
  { kind: "docker", name: "route slots on one port", config: { container: "web", route: { service: "web", listen: "127.0.0.1:8080", slots: { blue: 8081, green: 8081 } } }, field: "config.route.slots.green" },
  { kind: "docker", name: "route service name", config: { container: "web", route: { service: "Web App", listen: "127.0.0.1:8080", slots: { blue: 8081, green: 8082 } } }, field: "config.route.service" },
  { kind: "docker", name: "route listen without port", config: { container: "web", route: { service: "web", listen: "127.0.0.1", slots: { blue: 8081, green: 8082 } } }, field: "config.route.listen" },
  { kind: "compose", name: "a project", config: { project: "shop", directory: "/srv/shop", services: { web: "web" } } },
  { kind: "compose", name: "project in capitals", config: { project: "Shop", directory: "/srv/shop" }, field: "config.project" },
  { kind: "ecs", name: "a service", config: { region: "eu-west-1", cluster: "prod", service: "web" } },
  { kind: "ecs", name: "not a region", config: { region: "Europe", cluster: "prod", service: "web" }, field: "config.region" },
  { kind: "nomad", name: "a job", config: { address: "http://127.0.0.1:4646", job: "web" } },
  { kind: "nomad", name: "address not a URL", config: { address: "nomad:4646", job: "web" }, field: "config.address" },
  { kind: "ssh", name: "a docker host", config: { ...SSH, docker: { container: "web" } } },
  { kind: "ssh", name: "a script host", config: { ...SSH, mode: "script", script: { deploy: "echo $FERRY_DIGEST", rollback: "true", timeoutSeconds: 60, env: { A: "b" } } } },
  { kind: "ssh", name: "a SHA256 fingerprint", config: { ...SSH, hostKey: "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8", docker: { container: "web" } } },
  { kind: "ssh", name: "trust on first use, asked for", config: { host: "10.0.0.5", user: "deploy", hostKeyTrust: "first-use", docker: { container: "web" } } },
  { kind: "ssh", name: "user missing", config: { host: "app-1", hostKey: SSH.hostKey, docker: { container: "web" } }, field: "config.user" },
  { kind: "ssh", name: "no host key pinned", config: { host: "app-1", user: "deploy", docker: { container: "web" } }, field: "config.hostKey" },
  { kind: "ssh", name: "host key not a key", config: { ...SSH, hostKey: "AAAAC3Nza", docker: { container: "web" } }, field: "config.hostKey" },
  { kind: "ssh", name: "docker mode without a container", config: SSH, field: "config.docker" },
  { kind: "ssh", name: "docker container with the parking marker", config: { ...SSH, docker: { container: "web.ferry-old-1" } }, field: "config.docker.container" },
  { kind: "ssh", name: "a routed docker container (no host router over SSH)", config: { ...SSH, docker: { container: "web", route: { service: "web", listen: "127.0.0.1:80", slots: [8081, 8082] } } }, field: "config.docker.route" },
  { kind: "ssh", name: "script mode without a script", config: { ...SSH, mode: "script" }, field: "config.script" },
  { kind: "ssh", name: "script without deploy", config: { ...SSH, mode: "script", script: { rollback: "true" } }, field: "config.script.deploy" },
  { kind: "ssh", name: "script timeout too long", config: { ...SSH, mode: "script", script: { deploy: "true", timeoutSeconds: 86_401 } }, field: "config.script.timeoutSeconds" },
  { kind: "ssh", name: "a key reference with a path", config: { ...SSH, credentialsRef: "../id_ed25519", docker: { container: "web" } }, field: "config.credentialsRef" },
  { kind: "ssh", name: "a private key in the config", config: { ...SSH, privateKey: "-----BEGIN", docker: { container: "web" } }, field: "config.privateKey" },
  { kind: "winrm", name: "a script host", config: { host: "win-1", transport: "https", script: { deploy: "Write-Output $env:FERRY_DIGEST" } } },
  { kind: "winrm", name: "a service", config: { host: "win-1", auth: "basic", credentialsRef: "ops", mode: "service", service: { name: "ShopWeb", install: "Copy-Item x y", healthUrl: "http://127.0.0.1:8080/health" }, stickerPath: "C:\\ProgramData\\Ferry\\web.json" } },
  { kind: "winrm", name: "a Windows container", config: { host: "win-1", mode: "container", container: { name: "web", env: { A: "b" }, healthUrl: "http://127.0.0.1:80/health" } } },
  { kind: "winrm", name: "container mode without a container", config: { host: "win-1", mode: "container" }, field: "config.container" },
  { kind: "winrm", name: "container name with the parking marker", config: { host: "win-1", mode: "container", container: { name: "web.ferry-old-1" } }, field: "config.container.name" },
  { kind: "winrm", name: "transport", config: { host: "win-1", transport: "smb", script: { deploy: "1" } }, field: "config.transport" },
  { kind: "winrm", name: "a password in the config", config: { host: "win-1", password: "x", script: { deploy: "1" } }, field: "config.password" },
  { kind: "winrm", name: "service mode without a service", config: { host: "win-1", mode: "service" }, field: "config.service" },
  { kind: "winrm", name: "a service name with a quote", config: { host: "win-1", mode: "service", service: { name: "a'b", install: "1" } }, field: "config.service.name" },
  { kind: "winrm", name: "sticker path not Windows", config: { host: "win-1", script: { deploy: "1" }, stickerPath: "/var/x" }, field: "config.stickerPath" },
];
