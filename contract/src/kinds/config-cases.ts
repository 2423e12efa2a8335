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
  { kind: "compose", name: "every field", config: { project: "shop", directory: "/srv/shop", file: "compose.yaml", services: { web: "web", worker: "jobs" }, healthCheck: { type: "none" }, socketPath: "/run/docker.sock" } },
  { kind: "compose", name: "compose file outside the directory", config: { project: "shop", directory: "/srv/shop", file: "../etc/x.yml" }, field: "config.file" },
  { kind: "compose", name: "compose file not YAML", config: { project: "shop", directory: "/srv/shop", file: "compose.json" }, field: "config.file" },
  { kind: "compose", name: "service name Compose refuses", config: { project: "shop", directory: "/srv/shop", services: { "we b": "web" } }, field: "config.services.we b" },
  { kind: "compose", name: "relative directory", config: { project: "shop", directory: "srv/shop" }, field: "config.directory" },
  { kind: "compose", name: "project in capitals", config: { project: "Shop", directory: "/srv/shop" }, field: "config.project" },
  { kind: "ecs", name: "a service", config: { region: "eu-west-1", cluster: "prod", service: "web" } },
  { kind: "ecs", name: "not a region", config: { region: "Europe", cluster: "prod", service: "web" }, field: "config.region" },
  {
    kind: "ecs",
    name: "several containers and a rollout",
    config: { region: "eu-west-1", cluster: "arn:aws:ecs:eu-west-1:123456789012:cluster/prod", service: "shop", containers: { web: "web", "log-router": "logs" }, deployment: { maximumPercent: 200, minimumHealthyPercent: 50, circuitBreakerRollback: false }, steadyStateTimeoutSeconds: 600 },
  },
  { kind: "ecs", name: "one named container", config: { region: "eu-west-1", cluster: "prod", service: "web", containerName: "app", component: "web" } },
  { kind: "ecs", name: "service with a slash", config: { region: "eu-west-1", cluster: "prod", service: "a/b" }, field: "config.service" },
  { kind: "ecs", name: "containers and containerName", config: { region: "eu-west-1", cluster: "prod", service: "web", containerName: "app", containers: { app: "web" } }, field: "config.containers" },
  { kind: "ecs", name: "empty containers", config: { region: "eu-west-1", cluster: "prod", service: "web", containers: {} }, field: "config.containers" },
  { kind: "ecs", name: "container name with a space", config: { region: "eu-west-1", cluster: "prod", service: "web", containers: { "a b": "web" } }, field: "config.containers.a b" },
  { kind: "ecs", name: "maximumPercent under 100", config: { region: "eu-west-1", cluster: "prod", service: "web", deployment: { maximumPercent: 90 } }, field: "config.deployment.maximumPercent" },
  { kind: "ecs", name: "credentials are not config", config: { region: "eu-west-1", cluster: "prod", service: "web", accessKeyId: "AKIA" }, field: "config.accessKeyId" },
  { kind: "nomad", name: "a job", config: { address: "http://127.0.0.1:4646", job: "web" } },
  { kind: "nomad", name: "a job on the agent's address", config: { job: "web", namespace: "shop", region: "global", group: "web", task: "server", component: "web" } },
  { kind: "nomad", name: "several tasks", config: { job: "shop", tasks: { "web/server": "web", "web/sidecar": "proxy" }, deploymentTimeoutSeconds: 600, progressTimeoutSeconds: 120 } },
  { kind: "nomad", name: "address not a URL", config: { address: "nomad:4646", job: "web" }, field: "config.address" },
  { kind: "nomad", name: "tasks key without a group", config: { job: "web", tasks: { server: "web" } }, field: "config.tasks.server" },
  { kind: "nomad", name: "tasks and task", config: { job: "web", task: "server", tasks: { "web/server": "web" } }, field: "config.tasks" },
  { kind: "nomad", name: "job id with a space", config: { job: "my job" }, field: "config.job" },
  { kind: "nomad", name: "a token is not config", config: { job: "web", token: "s3cr3t" }, field: "config.token" },
  { kind: "ssh", name: "a host", config: { host: "10.0.0.5", user: "deploy" } },
  { kind: "ssh", name: "user missing", config: { host: "app-1" }, field: "config.user" },
  { kind: "winrm", name: "a host", config: { host: "win-1", user: "Administrator", transport: "https" } },
  { kind: "winrm", name: "transport", config: { host: "win-1", user: "a", transport: "smb" }, field: "config.transport" },
];
