// Composition root: resolved config -> store -> trust -> services -> servers.
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { EvidenceKey, FleetCa, LISTENER_TLS_OPTIONS, TaskSigningKeyring } from "@ferry/pki";
import { create } from "@bufbuild/protobuf";
import { AgentService, ConnectResponseSchema, EnrolmentService, SigningKeysSchema, errorCodeInterceptor, serverDefinition } from "@ferry/proto";
import type { ResolvedConfig } from "./config/config.js";
import { isLoopbackHost, redactUrl } from "./config/config.js";
import { AuditCheckpointer } from "./domain/audit/audit-anchor.js";
import { bootstrapAdminToken, hasUsableAdminToken } from "./domain/auth/admin-token.js";
import { checkReplicaIdentity } from "./domain/fleet/replica-identity.js";
import { adminTokenPath, prepareDataDir, removeRuntime, writeAdminToken, writeRuntime } from "./data-dir.js";
import { CatalogService } from "./domain/catalog/catalog-service.js";
import { loadCursorKey, useCursorKey } from "./domain/catalog/pagination.js";
import { FleetService, REVOCATION_CHANNEL } from "./domain/fleet/fleet-service.js";
import { offlineAfterMs, type LivenessPolicy } from "./domain/fleet/liveness.js";
import { LivenessRecorder } from "./domain/fleet/liveness-recorder.js";
import { systemClock, type Clock } from "./ports/clock.js";
import type { Store } from "./ports/store.js";
import { startMaintenance } from "./adapters/store/maintenance.js";
import { openStore } from "./adapters/store/index.js";
import { EnvAndFileCredentialStore, OciRegistry } from "./adapters/registry/index.js";
import { AdmissionGate, PeerAdmission } from "./adapters/grpc/admission.js";
import { agentServiceImpl, signingKeysMessage, type Revocations } from "./adapters/grpc/agent-service.js";
import { SIGNING_KEYS_CHANNEL } from "./adapters/http/routes/signing-keys.js";
import { enrolmentServiceImpl } from "./adapters/grpc/enrolment-service.js";
import { MtlsListener } from "./adapters/grpc/mtls-listener.js";
import { TlsFront } from "./adapters/grpc/tls-front.js";
import { RefusalRecorder } from "./adapters/grpc/refusals.js";
import { SessionRegistry } from "./adapters/grpc/session-registry.js";
import { TaskDispatcher, registryCredentialsFor } from "./adapters/grpc/task-dispatcher.js";
import { DeploymentService, TASK_NOTIFY_CHANNEL } from "./domain/deploy/deployment-service.js";
import { TaskQueue } from "./domain/deploy/task-queue.js";
import { TargetChecks } from "./domain/deploy/target-checks.js";
import { SqlWebhookStore } from "./domain/notify/webhook-service.js";
import { HttpWebhookTransport, WebhookDispatcher } from "./domain/notify/webhooks.js";
import { WebhookTargetPolicy } from "./domain/notify/webhook-targets.js";
import { EvidenceStore } from "./domain/promotion/evidence-store.js";
import { createGateEngine, parseScanReport } from "./domain/promotion/gate-engine.js";
import { PromotionService } from "./domain/promotion/promotion-service.js";
import { RolloutService } from "./domain/rollout/rollout-service.js";
import { RolloutStepper } from "./domain/rollout/rollout-stepper.js";
import { checkStrategySetting } from "./domain/rollout/strategy.js";
import { RolloutEngine } from "./runtime/rollout-engine.js";
import { SecurityRecords } from "./domain/promotion/security-records.js";
import { createMetrics } from "./adapters/http/metrics.js";
import { buildHttpServer } from "./adapters/http/server.js";
import { apiTlsMaterial, watchOperatorTls } from "./adapters/http/api-tls.js";

export const FLEET_PING_CHANNEL = "ferry_fleet_ping";
const CONTROL_PLANE_VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
const SERVER_CERT_LIFETIME_MS = 30 * 86_400_000;
const DEFAULT_JOIN_TOKEN_TTL_MS = 30 * 60_000;

export interface RunningControlPlane {
  readonly api: string;
  /** Where the API's certificate comes from; null for plain HTTP. */
  readonly apiTls: "ferry-ca" | "operator" | null;
  readonly agentPort: number;
  readonly enrolPort: number;
  readonly caFingerprint: string;
  readonly adminTokenFile: string | null;
  /** The admin API token's secret, only on the start that created it (first start). */
  readonly newAdminSecret: string | null;
  readonly store: Store;
  stop(): Promise<void>;
}

function withPort(endpoint: string, port: number): string {
  return endpoint.replace(/:0$/, `:${port}`);
}

export async function startControlPlane(cfg: ResolvedConfig, log: Logger, clock: Clock = systemClock): Promise<RunningControlPlane> {
  const startedAt = clock.now();
  await prepareDataDir(cfg.dataDir, log);
  log.info({ dataDir: cfg.dataDir, database: cfg.databaseUrl ? redactUrl(cfg.databaseUrl) : "pglite" }, "starting control plane");

  const storeOpts: Parameters<typeof openStore>[0] = { dataDir: cfg.dataDir, log };
  if (cfg.databaseUrl) storeOpts.databaseUrl = cfg.databaseUrl;
  const store = await openStore(storeOpts);
  const cleanups: Array<() => Promise<void> | void> = [() => store.close()];
  const stopAll = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        log.warn({ err }, "error during shutdown");
      }
    }
  };

  try {
    cleanups.push(await startMaintenance(store, log.child({ component: "store-maintenance" })));
    const ca = await FleetCa.loadOrCreate(cfg.caDir);
    const signer = await TaskSigningKeyring.loadOrCreate(cfg.taskSigningDir);
    const evidenceKey = await EvidenceKey.loadOrCreate(cfg.evidenceKeyDir);
    const gates = createGateEngine();
    const caBundle = (): string[] => [ca.certPem];
    const serverCert = await ca.issueServerCertificate({ hosts: cfg.tlsHosts, lifetimeMs: SERVER_CERT_LIFETIME_MS });
    const certChainPem = `${serverCert.certPem.trim()}\n${ca.certPem.trim()}\n`;

    await checkReplicaIdentity(
      store,
      { caFingerprint: ca.fingerprint, activeTaskSigningKeyId: signer.active.keyId, taskSigningKeyIds: signer.keys.map((k) => k.keyId) },
      { caDir: cfg.caDir, taskSigningDir: cfg.taskSigningDir },
    );

    const adminSecret = await bootstrapAdminToken(store);
    useCursorKey(await loadCursorKey(store));
    const adminTokenFile = adminTokenPath(cfg.dataDir);
    if (adminSecret) await writeAdminToken(cfg.dataDir, adminSecret);
    else if (!(await hasUsableAdminToken(store))) {
      log.warn({ dataDir: cfg.dataDir }, "no admin API token is left (all revoked or expired); create one with: ferry admin-token reset --data-dir <data-dir> (or --database-url)");
    }

    const metrics = createMetrics();
    // Until the listeners are up, "now" stands in for the ready time, which keeps offline decisions frozen.
    let readyAt: number | null = null;
    const readySince = (): number => readyAt ?? clock.now();
    const policy: LivenessPolicy = { heartbeatIntervalMs: cfg.heartbeatIntervalMs, graceMs: cfg.livenessGraceMs };
    const fleet: FleetService = new FleetService({
      store,
      ca,
      clock,
      liveness: policy,
      certLifetimeMs: cfg.certLifetimeMs,
      readyAt: readySince,
      recentHeartbeat: (id) => recorder.recent(id),
    });
    const credentials = new EnvAndFileCredentialStore({ env: process.env, ...(cfg.registryCredentials ? { file: cfg.registryCredentials } : {}) });
    // Fail at start, not at the first release, when the credentials file is unreadable, insecure or malformed.
    await credentials.check();
    const catalog = new CatalogService({
      checkSettings: (settings) => {
        gates.check(settings);
        // An environment's default strategy is checked when it is set, not when the next deploy trips on it.
        checkStrategySetting(settings);
      },
      store,
      registry: new OciRegistry({ timeoutMs: cfg.registryTimeoutMs, insecureRegistries: cfg.insecureRegistries, internalHosts: cfg.registryInternalHosts }),
      credentials,
      clock,
    });
    const evidence = new EvidenceStore({ store, key: evidenceKey, clock });
    const auditCheckpointer = new AuditCheckpointer({
      store,
      key: evidenceKey,
      clock,
      intervalMs: cfg.auditCheckpointIntervalMs,
      onError: (err) => log.warn({ err }, "could not sign an audit checkpoint"),
    });
    auditCheckpointer.start();
    // Registered early, so it runs late at shutdown (cleanups run in reverse): its final checkpoint comes after the
    // HTTP server and the background loops stopped appending.
    cleanups.push(() => auditCheckpointer.stop());
    const deployments = new DeploymentService({ store, catalog, signer, clock, taskTtlMs: cfg.taskTtlMs, evidence });
    const targetChecks = new TargetChecks({ store, signer, clock, taskTtlMs: cfg.taskTtlMs });
    const webhookPolicy = new WebhookTargetPolicy(cfg.webhookAllow);
    const webhooks = new SqlWebhookStore({ store, clock, policy: webhookPolicy });
    const webhookDispatcher = new WebhookDispatcher({ store: webhooks, transport: new HttpWebhookTransport({ policy: webhookPolicy }), logger: log.child({ component: "webhooks" }) });
    cleanups.push(async () => {
      await webhookDispatcher.stop({ timeoutMs: 2000 });
    });
    const rollouts = new RolloutService({ store, catalog, deployments, clock });
    // Rollouts live in the store; every replica runs the engine (leases and row locks keep replicas apart).
    const rolloutEngine = new RolloutEngine({
      store,
      clock,
      replicaId: cfg.replicaId,
      stepper: new RolloutStepper({
        store,
        deployments,
        clock,
        evidence,
        events: { emit: (type, data) => webhookDispatcher.enqueue({ type, id: `evt_${randomBytes(8).toString("hex")}`, at: new Date(clock.now()).toISOString(), data }) },
      }),
      onError: (err, rollout) => log.warn({ err, rollout }, "rollout engine tick failed"),
    });
    rolloutEngine.start();
    cleanups.push(() => rolloutEngine.stop());
    const promotions = new PromotionService({
      store,
      catalog,
      deployments,
      rollouts,
      gates,
      evidence,
      clock,
      ttlMs: cfg.promotionTtlMs,
      events: {
        emit: (type, data) => {
          webhookDispatcher.enqueue({ type: type as Parameters<typeof webhookDispatcher.enqueue>[0]["type"], id: `evt_${randomBytes(8).toString("hex")}`, at: new Date(clock.now()).toISOString(), data });
        },
      },
    });
    const records = new SecurityRecords({ store, clock, parseReport: parseScanReport });
    // Promotions live in the store; every replica moves the active ones along (row locks keep them apart).
    let promoting = false;
    const promotionTimer = setInterval(() => {
      if (promoting) return;
      promoting = true;
      promotions
        .sweep()
        .catch((err: unknown) => log.warn({ err }, "promotion sweep failed"))
        .finally(() => (promoting = false));
    }, 1000);
    promotionTimer.unref();
    cleanups.push(() => clearInterval(promotionTimer));
    const taskQueue = new TaskQueue({ store, clock, timings: { ackTimeoutMs: cfg.taskAckTimeoutMs, runningLeaseMs: cfg.taskLeaseMs } });
    const recorder = new LivenessRecorder({
      store,
      clock,
      policy,
      readyAt: readySince,
      replicaId: cfg.replicaId,
      log: log.child({ component: "liveness" }),
      lastSeenFlushMs: cfg.lastSeenFlushMs,
      onFlush: (kind, rows) => metrics.livenessWrites.inc({ kind }, rows),
    });
    recorder.start();
    cleanups.push(() => recorder.stop());

    const sessions = new SessionRegistry({
      heartbeatIntervalMs: () => cfg.heartbeatIntervalMs,
      silentAfterMs: () => offlineAfterMs(policy),
      now: () => clock.now(),
    });
    sessions.start();
    cleanups.push(() => sessions.stop());

    const revocations: Revocations = await fleet.loadRevocations();
    const reloadRevocations = async () => {
      const fresh = await fleet.loadRevocations();
      revocations.serials = fresh.serials;
      revocations.agents = fresh.agents;
    };
    const unlistenRevocations = await store.listen(REVOCATION_CHANNEL, (payload) => {
      let msg: { agentId?: string; serial?: string } = {};
      try {
        msg = JSON.parse(payload) as typeof msg;
      } catch {
        log.warn({ payload }, "ignoring a malformed revocation notice");
      }
      if (msg.agentId) {
        revocations.agents.add(msg.agentId);
        recorder.forget(msg.agentId);
        if (sessions.closeAgent(msg.agentId, "AGENT_REVOKED", "this agent was revoked; enrol it again with a new join token")) {
          log.info({ agentId: msg.agentId }, "closed the stream of a revoked agent");
        }
      }
      if (msg.serial) {
        revocations.serials.add(msg.serial);
        sessions.closeSerial(msg.serial, "CERT_REVOKED", `certificate ${msg.serial} was revoked`);
      }
      // The notice is a hint; the database is the truth. Reload in case notices were missed while disconnected.
      reloadRevocations().catch((err: unknown) => log.warn({ err }, "could not reload revocations"));
    });
    cleanups.push(unlistenRevocations);
    const revocationTimer = setInterval(() => {
      reloadRevocations().catch((err: unknown) => log.warn({ err }, "could not reload revocations"));
    }, 60_000);
    revocationTimer.unref();
    cleanups.push(() => clearInterval(revocationTimer));

    const unlistenPing = await store.listen(FLEET_PING_CHANNEL, () => {
      sessions.pingAll();
    });
    cleanups.push(unlistenPing);

    const dispatcher = new TaskDispatcher({
      queue: taskQueue,
      sessions,
      credentialsFor: (images) => registryCredentialsFor(store, credentials, images),
      log: log.child({ component: "tasks" }),
      // After a start, agents need a moment to reconnect and renew the leases of what they are running.
      expireRunningAfter: () => readySince() + offlineAfterMs(policy),
      now: () => clock.now(),
      sweepIntervalMs: cfg.taskSweepIntervalMs,
    });
    dispatcher.start();
    cleanups.push(() => dispatcher.stop());
    const unlistenTasks = await store.listen(TASK_NOTIFY_CHANNEL, (agentId) => dispatcher.wake(agentId));
    cleanups.push(unlistenTasks);
    // A rotation through any replica: re-read the shared keyring, then tell every agent streaming here.
    const announceKeys = async () => {
      await signer.reload();
      const keys = signingKeysMessage(signer.publicKeys());
      const msg = create(ConnectResponseSchema, { body: { case: "signingKeys", value: create(SigningKeysSchema, { keys }) } });
      let sent = 0;
      for (const s of sessions.all()) {
        sessions.send(s, msg);
        sent++;
      }
      log.info({ activeKeyId: signer.active.keyId, agents: sent }, "task-signing keys announced");
    };
    const unlistenKeys = await store.listen(SIGNING_KEYS_CHANNEL, () => {
      announceKeys().catch((err: unknown) => log.error({ err }, "could not reload the task-signing keys"));
    });
    cleanups.push(unlistenKeys);

    const refusals = new RefusalRecorder(fleet, log.child({ component: "agent-listener" }), metrics.refusals);
    const grpcOptions: grpc.ServerOptions = {
      // Backstop only: handlers refuse oversize messages themselves with MESSAGE_TOO_LARGE (see proto/src/grpc.ts).
      "grpc.max_receive_message_length": cfg.maxMessageBytes * 4,
      "grpc.keepalive_time_ms": 60_000,
      "grpc.keepalive_timeout_ms": 20_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc-node.max_session_memory": 10,
      // Every status an agent gets carries a Ferry code; a response that cannot be encoded is logged, not swallowed.
      interceptors: [errorCodeInterceptor({ onSerializeError: (err, method) => log.error({ err, method }, "could not encode a gRPC response") })],
    };

    // grpc-js turns a response it cannot encode into INTERNAL for the agent and says nothing here.
    const encodeFailed = (method: string, err: unknown) => log.error({ err, method }, "could not encode a response to an agent; the call failed with INTERNAL");

    // ---- agent listener (mTLS) ----
    const agentGrpc = new grpc.Server(grpcOptions);
    let listener: MtlsListener | null = null;
    let agentEndpoint = cfg.advertiseAgent;
    agentGrpc.addService(
      serverDefinition(AgentService, { maxMessageBytes: cfg.maxMessageBytes, onEncodeError: encodeFailed }),
      agentServiceImpl({
        fleet,
        listener: () => listener as MtlsListener,
        sessions,
        recorder,
        revocations,
        admission: new AdmissionGate(cfg.streamRate, cfg.streamBurst, clock),
        refusals,
        clock,
        heartbeatIntervalMs: cfg.heartbeatIntervalMs,
        caBundle,
        log: log.child({ component: "agent-service" }),
        onHeartbeat: () => metrics.heartbeats.inc(),
        tasks: { queue: taskQueue, dispatcher, signingKeys: () => signer.publicKeys(), onConnected: (agentId, facts) => targetChecks.queuePendingFor(agentId, facts) },
      }),
    );
    listener = new MtlsListener({
      grpc: agentGrpc,
      keyPem: serverCert.keyPem,
      certChainPem,
      caBundle: caBundle(),
      log: log.child({ component: "agent-listener" }),
      onRefusedConnection: (v, peer) => refusals.refuse("agent", v.code, v.message, { peer }),
      isKnownAgent: (agentId) => fleet.isEnrolled(agentId),
      tlsOptions: LISTENER_TLS_OPTIONS,
    });
    const agentPort = await listener.listen(cfg.agentListen.host, cfg.agentListen.port);
    agentEndpoint = withPort(cfg.advertiseAgent, agentPort);
    const liveListener = listener;
    cleanups.push(async () => {
      sessions.closeAll("SERVER_SHUTTING_DOWN", "the control plane is restarting", randomInt(1000, 5000));
      await new Promise<void>((r) => setTimeout(r, 50));
      await liveListener.close();
      agentGrpc.forceShutdown();
    });

    // ---- enrolment listener (TLS) ----
    const enrolGrpc = new grpc.Server(grpcOptions);
    let enrolEndpoint = cfg.advertiseEnrol;
    enrolGrpc.addService(
      serverDefinition(EnrolmentService, { maxMessageBytes: cfg.maxMessageBytes, onEncodeError: encodeFailed }),
      enrolmentServiceImpl({
        fleet,
        admission: new AdmissionGate(cfg.enrolRate, cfg.enrolBurst, clock),
        peerAdmission: new PeerAdmission(cfg.enrolPeerRate, cfg.enrolPeerBurst, clock),
        refusals,
        caBundle,
        agentEndpoint: () => agentEndpoint,
        heartbeatIntervalMs: cfg.heartbeatIntervalMs,
        signingKeys: () => signer.publicKeys(),
        log: log.child({ component: "enrolment" }),
        onEnrol: (outcome) => metrics.enrolments.inc({ outcome }),
      }),
    );
    const enrolFront = new TlsFront(enrolGrpc, serverCert.keyPem, certChainPem, log.child({ component: "enrolment" }));
    const enrolPort = await enrolFront.listen(cfg.enrolListen.host, cfg.enrolListen.port);
    enrolEndpoint = withPort(cfg.advertiseEnrol, enrolPort);
    cleanups.push(async () => {
      await enrolFront.close();
      enrolGrpc.forceShutdown();
    });

    // ---- HTTP API + dashboard ----
    const apiTls = apiTlsMaterial(cfg.apiTls, { keyPem: serverCert.keyPem, certChainPem });
    const http = await buildHttpServer({
      https: apiTls,
      store,
      fleet,
      catalog,
      deployments,
      rollouts,
      targetChecks,
      keyring: signer,
      taskTtlMs: cfg.taskTtlMs,
      promotions,
      records,
      evidence,
      webhooks,
      auditCheckpointer,
      metrics,
      log,
      version: CONTROL_PLANE_VERSION,
      maxBodyBytes: cfg.maxBodyBytes,
      replicaId: cfg.replicaId,
      startedAt,
      caFingerprint: ca.fingerprint,
      enrolEndpoint: () => enrolEndpoint,
      defaultJoinTokenTtlMs: DEFAULT_JOIN_TOKEN_TTL_MS,
      pingFleet: async () => {
        const before = sessions.size;
        await store.notify(FLEET_PING_CHANNEL, String(clock.now()));
        return { replicaSent: before };
      },
    });
    const apiAddress = await http.listen({ host: cfg.apiListen.host, port: cfg.apiListen.port });
    cleanups.push(() => http.close());
    if (apiTls?.source === "operator") cleanups.push(watchOperatorTls(http.server as unknown as Parameters<typeof watchOperatorTls>[0], cfg.apiTls, log.child({ component: "http" })));
    if (!apiTls && !isLoopbackHost(cfg.apiListen.host)) {
      log.warn({ apiListen: cfg.apiListen }, "the API listens beyond loopback over plain HTTP (--api-tls off): bearer tokens cross the network in clear unless a TLS proxy is in front");
    }

    const gaugeTimer = setInterval(() => {
      metrics.agentsConnected.set(sessions.size);
      metrics.agentConnections.set(liveListener.connectionCount);
    }, 1000);
    gaugeTimer.unref();
    cleanups.push(() => clearInterval(gaugeTimer));

    readyAt = clock.now();
    const runtime = {
      pid: process.pid,
      replicaId: cfg.replicaId,
      api: apiAddress,
      agentPort,
      enrolPort,
      agentEndpoint,
      enrolEndpoint,
      caFingerprint: ca.fingerprint,
      startedAt: new Date(startedAt).toISOString(),
    };
    await writeRuntime(cfg.dataDir, runtime);
    cleanups.push(() => removeRuntime(cfg.dataDir, process.pid));
    log.info(runtime, "control plane ready");

    return {
      api: apiAddress,
      apiTls: apiTls?.source ?? null,
      agentPort,
      enrolPort,
      caFingerprint: ca.fingerprint,
      adminTokenFile: adminSecret || existsSync(adminTokenFile) ? adminTokenFile : null,
      store,
      newAdminSecret: adminSecret,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
