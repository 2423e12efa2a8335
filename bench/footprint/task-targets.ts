// The docker targets the footprint benches deploy to (bench:footprint, agent-tasks.ts): what makes a task an
// ordinary deploy or a log-heavy one is the target's config.

/** A busybox httpd on its own loopback port (host networking), checked over HTTP: every deploy replaces it. */
export function httpdTargetConfig(container: string, port: number): Record<string, unknown> {
  return {
    container,
    component: "web",
    command: ["sh", "-c", `trap 'exit 0' TERM INT; httpd -f -p 127.0.0.1:${port} -h /www & wait`],
    healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 30, intervalSeconds: 1 },
  };
}

// A crash report copies the container's last 20 lines, each cut at 300 characters: print 40 lines of 400.
const LONG_LINE = "x".repeat(380);

/**
 * A container that prints long lines and crashes at start: the driver copies its last lines into the task log (the
 * largest log a Docker task writes) and the task fails with INSTANCE_CRASHED. `port` is where its health check would
 * look (nothing ever listens there).
 */
export function crashingTargetConfig(container: string, port: number): Record<string, unknown> {
  return {
    container,
    component: "web",
    command: ["sh", "-c", `for i in $(seq 1 40); do echo "line $i ${LONG_LINE}"; done; echo "failing at start" >&2; exit 3`],
    healthCheck: { type: "http", url: `http://127.0.0.1:${port}/health`, timeoutSeconds: 30, intervalSeconds: 1 },
  };
}
