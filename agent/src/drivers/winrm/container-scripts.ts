// Container mode: a Windows container on the host's Docker Engine, driven with the docker CLI through PowerShell
// (the engine's named pipe cannot be reached through WinRM, so the Docker driver's phases cannot be reused as they
// are). The same guarantees, step by step:
//   prepare  the image by digest: not pulled again when the engine holds exactly repository@digest; RepoDigests must
//            contain repository@digest (exit 11: DIGEST_MISMATCH; a failed pull exits 10: IMAGE_PULL_FAILED);
//            what runs now under the name is recorded
//   start    park the previous container as <name>.ferry-old-<id>, create the new one with Ferry's labels, stop the
//            previous one, start the new one, and check it runs the verified image id
//   health   running with no restart through the settle window, then the health URL on the host's loopback
//   restore  remove the new container, give the parked one its name back, start it if it ran
//   retire   remove the parked container
// Every step prints a marker line (FERRY-…) the driver reads back into its state, so a script that fails half-way
// still tells restore exactly what it changed.
import type { ImagePin, WinrmContainerConfig } from "@ferry/contract";

import { psQuote } from "./ps-quote.js";

export const MARK = {
  image: "FERRY-IMAGE-ID:",
  source: "FERRY-SOURCE:",
  previous: "FERRY-PREVIOUS:",
  parked: "FERRY-PARKED:",
  created: "FERRY-CREATED:",
  stopped: "FERRY-STOPPED",
} as const;

export const EXIT = { pullFailed: 10, digestMismatch: 11, crashed: 2, unhealthy: 1 } as const;

/** The marker values a run printed, by marker. */
export function markers(stdout: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of stdout.split(/\r?\n/)) {
    for (const mark of Object.values(MARK)) if (line.startsWith(mark)) m.set(mark, line.slice(mark.length).trim());
  }
  return m;
}

export function prepareScript(pin: ImagePin, name: string): string {
  return [
    `$ref = ${psQuote(pin.ref)}; $name = ${psQuote(name)}`,
    "$have = docker image inspect --format '{{json .RepoDigests}}' $ref 2>$null",
    `if ($LASTEXITCODE -eq 0 -and (($have | ConvertFrom-Json) -contains $ref)) { Write-Output '${MARK.source}local' } else {`,
    `  docker pull $ref; if ($LASTEXITCODE -ne 0) { exit ${EXIT.pullFailed} }; Write-Output '${MARK.source}pulled'`,
    "  $have = docker image inspect --format '{{json .RepoDigests}}' $ref",
    `  if (-not (($have | ConvertFrom-Json) -contains $ref)) { Write-Error "the image does not carry $ref (it carries $have)"; exit ${EXIT.digestMismatch} }`,
    "}",
    `Write-Output ('${MARK.image}' + (docker image inspect --format '{{.Id}}' $ref))`,
    "$prev = docker inspect --format '{{.Id}}|{{.State.Running}}' $name 2>$null",
    `if ($LASTEXITCODE -eq 0) { Write-Output ('${MARK.previous}' + $prev) }`,
    "exit 0",
  ].join("\n");
}

export function startScript(pin: ImagePin, c: WinrmContainerConfig, imageId: string, previous: { id: string; running: boolean } | undefined, labels: Record<string, string>): string {
  const lines = [`$ref = ${psQuote(pin.ref)}; $name = ${psQuote(c.name)}`];
  if (previous) {
    const parked = `${c.name}.ferry-old-${previous.id.slice(0, 12)}`;
    lines.push(`docker rename ${psQuote(previous.id)} ${psQuote(parked)}; if ($LASTEXITCODE -ne 0) { exit 20 }`, `Write-Output '${MARK.parked}${parked}'`);
  }
  const args = [
    "--name", c.name, "--restart", "unless-stopped",
    ...Object.entries(labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
    ...Object.entries(c.env ?? {}).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
    pin.ref,
    ...(c.command ?? []),
  ];
  lines.push(`$id = docker create ${args.map(psQuote).join(" ")}; if ($LASTEXITCODE -ne 0) { exit 21 }`, `Write-Output ('${MARK.created}' + $id)`);
  if (previous?.running) lines.push(`docker stop ${psQuote(previous.id)} | Out-Null; if ($LASTEXITCODE -ne 0) { exit 22 }`, `Write-Output '${MARK.stopped}'`);
  lines.push(
    "docker start $id | Out-Null; if ($LASTEXITCODE -ne 0) { exit 23 }",
    "$running = docker inspect --format '{{.Image}}' $id",
    `if ($running -ne ${psQuote(imageId)}) { Write-Error "the container runs $running, not the verified image"; exit ${EXIT.digestMismatch} }`,
    "exit 0",
  );
  return lines.join("\n");
}

export function healthScript(c: WinrmContainerConfig, id: string): string {
  const settle = c.settleSeconds ?? 5;
  const timeout = c.timeoutSeconds ?? 600;
  return [
    `$id = ${psQuote(id)}; $first = docker inspect --format '{{.State.Running}}|{{.RestartCount}}|{{.State.StartedAt}}' $id; $deadline = (Get-Date).AddSeconds(${timeout})`,
    `for ($i = 0; $i -le ${settle}; $i++) { $now = docker inspect --format '{{.State.Running}}|{{.RestartCount}}|{{.State.StartedAt}}' $id; if (-not $now.StartsWith('true|') -or $now -ne $first) { docker logs --tail 20 $id; Write-Error "the container exited or restarted ($now)"; exit ${EXIT.crashed} }; if ($i -lt ${settle}) { Start-Sleep -Seconds 1 } }`,
    c.healthUrl
      ? `while ($true) { try { $r = Invoke-WebRequest -UseBasicParsing -TimeoutSec 5 -Uri ${psQuote(c.healthUrl)}; if ($r.StatusCode -ge 200 -and $r.StatusCode -lt 300) { exit 0 } } catch { }; if ((Get-Date) -gt $deadline) { Write-Error 'the health URL did not answer 2xx'; exit ${EXIT.unhealthy} }; Start-Sleep -Seconds 1 }`
      : "exit 0",
  ].join("\n");
}

export function restoreScript(name: string, newId: string | undefined, parked: string | undefined, previousRan: boolean): string {
  const lines: string[] = [];
  if (newId) lines.push(`docker rm -f ${psQuote(newId)} | Out-Null`);
  if (parked) lines.push(`docker rename ${psQuote(parked)} ${psQuote(name)}; if ($LASTEXITCODE -ne 0) { exit 30 }`);
  if (parked && previousRan) lines.push(`docker start ${psQuote(name)} | Out-Null; if ($LASTEXITCODE -ne 0) { exit 31 }`);
  lines.push("exit 0");
  return lines.join("\n");
}

export function retireScript(parked: string): string {
  return `docker rm -f ${psQuote(parked)} | Out-Null; exit $LASTEXITCODE`;
}
