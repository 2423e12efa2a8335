// Fills a Ferry store with an estate of the size the console's targets name: releases with their pins, agents, one
// target per agent, a successful deployment per environment with a task, a record and a sticker per target, and a
// few promotions — written with set-based SQL (generate_series) so 10,000 releases take seconds, not minutes.
import type { Store } from "../../control-plane/src/ports/store.js";

export interface SeedSize {
  releases: number;
  agents: number;
  components: string[];
  environments: string[];
}

export async function seedEstate(store: Store, s: SeedSize): Promise<void> {
  await store.transaction(async (tx) => {
    for (const [i, env] of s.environments.entries()) {
      await tx.query(`INSERT INTO environments (name, position, created_by) VALUES ($1, $2, 'bench') ON CONFLICT DO NOTHING`, [env, i + 1]);
    }
    for (const c of s.components) {
      await tx.query(`INSERT INTO components (name, repository, created_by) VALUES ($1, $2, 'bench')`, [c, `registry.bench.invalid/shop/${c}`]);
    }
    await tx.query(
      `INSERT INTO releases (id, name, version, notes, created_by, created_at)
       SELECT 'rel_bench' || g, 'shop', g::text, 'release ' || g, 'bench', now() - make_interval(mins => $1 - g + 120)
         FROM generate_series(1, $1) AS g`,
      [s.releases],
    );
    await tx.query(
      `INSERT INTO release_pins (release_id, component, repository, digest, media_type)
       SELECT 'rel_bench' || g, c, 'registry.bench.invalid/shop/' || c,
              'sha256:' || md5(g || c) || md5(c || g), 'application/vnd.oci.image.manifest.v1+json'
         FROM generate_series(1, $1) AS g, unnest($2::text[]) AS c`,
      [s.releases, s.components],
    );
    await tx.query(
      `INSERT INTO agents (id, name, environment, status, connected, last_heartbeat_at, heartbeat_interval_ms, cert_serial, cert_not_after, facts)
       SELECT 'agt_bench' || g, 'host-' || g, ($2::text[])[1 + (g % array_length($2::text[], 1))], 'online', false, now(), 15000,
              md5('serial' || g), now() + interval '20 hours',
              jsonb_build_object('hostname', 'host-' || g, 'os', 'linux', 'arch', 'x64', 'agentVersion', '0.1.0', 'drivers', jsonb_build_array('docker'))
         FROM generate_series(1, $1) AS g`,
      [s.agents, s.environments],
    );
    await tx.query(
      `INSERT INTO targets (id, environment, name, kind, agent_id, config, created_by)
       SELECT 'tgt_bench' || g, a.environment, 'web-' || g, 'docker', a.id, '{}'::jsonb, 'bench'
         FROM generate_series(1, $1) AS g JOIN agents a ON a.id = 'agt_bench' || g`,
      [s.agents],
    );
    // The newest release runs everywhere, deployed by one deployment per environment.
    const rel = `rel_bench${s.releases}`;
    await tx.query(
      `INSERT INTO deployments (id, environment, release_id, action, state, requested_by, created_at, updated_at, finished_at)
       SELECT 'dep_bench_' || e, e, $1, 'deploy', 'succeeded', 'bench', now() - interval '1 hour', now() - interval '50 minutes', now() - interval '50 minutes'
         FROM unnest($2::text[]) AS e`,
      [rel, s.environments],
    );
    await tx.query(
      `INSERT INTO tasks (id, deployment_id, agent_id, target_id, release_id, action, state, payload, payload_type, key_id, signature, images, not_after, queued_at, finished_at, code)
       SELECT 'tsk_bench' || g, 'dep_bench_' || t.environment, t.agent_id, t.id, $1, 'deploy', 'succeeded', '\\x00'::bytea, 'application/vnd.ferry.task+json', 'bench', '\\x00'::bytea,
              (SELECT jsonb_agg(jsonb_build_object('component', component, 'repository', repository, 'digest', digest, 'ref', repository || '@' || digest)) FROM release_pins WHERE release_id = $1),
              now(), now() - interval '1 hour', now() - interval '50 minutes', 'OK'
         FROM generate_series(1, $2) AS g JOIN targets t ON t.id = 'tgt_bench' || g`,
      [rel, s.agents],
    );
    await tx.query(
      `INSERT INTO target_deployments (target_id, deployment_id, task_id, release_id, images, finished_at)
       SELECT t.target_id, t.deployment_id, t.id, t.release_id, t.images, t.finished_at FROM tasks t WHERE t.id LIKE 'tsk_bench%'`,
    );
    await tx.query(
      `INSERT INTO target_stickers (target_id, agent_id, sticker, reported_at)
       SELECT t.target_id, t.agent_id,
              jsonb_build_object('targetId', t.target_id, 'deploymentId', t.deployment_id, 'observedState', 'running',
                'images', (SELECT jsonb_agg(i || jsonb_build_object('runningDigest', i->>'digest')) FROM jsonb_array_elements(t.images) AS i)),
              now()
         FROM tasks t WHERE t.id LIKE 'tsk_bench%'`,
    );
  });
}
