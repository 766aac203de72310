/**
 * The compute side of the Nova-like workload: update_available_resource, _poll_bandwidth_usage,
 * _instance_usage_audit and _poll_volume_usage, with the simulated hypervisor counters they poll.
 */
import crypto from 'node:crypto';
import type pg from 'pg';
import { CheckFailed, type NovaMeter } from './nova-meter.js';
import type { ComputeTaskName, ResolvedNovaWorkloadOptions } from './nova-workload-options.js';

/** One simulated compute host. */
export interface ComputeHost {
  name: string;
  node: string;
  /** The session of the periodic tasks (tagged through slave_connection unless untagged as a baseline). */
  client?: pg.Client;
  /** oslo mode: the writer session through `connection` (Nova's main engine); autocommit mode: none, writes use `client`. */
  writer?: pg.Client;
  /** The hypervisor's interface counters per instance uuid (bytes in/out since the guest booted). */
  counters: Map<string, { in: number; out: number }>;
}

/** The per-statement hint that keeps one read of a tagged session on the primary. */
export const PRIMARY_HINT = '/* pgsplit:route=primary */';

/** Migration states Nova treats as finished (migration_get_in_progress_by_host_and_node). */
const FINISHED_MIGRATION_STATES = ['confirmed', 'reverted', 'error', 'failed', 'completed', 'cancelled', 'done'];

/** 2^32: hypervisors report interface counters that wrap like 32-bit counters. */
const COUNTER_WRAP = 2 ** 32;

/**
 * The periodic tasks of one compute host, as Nova's compute manager runs them: they read a lot (from a
 * replica when the session is tagged) and write a little (always through the writer).
 */
export class NovaComputeTasks {
  readonly options: ResolvedNovaWorkloadOptions;
  readonly #meter: NovaMeter;

  constructor(meter: NovaMeter, options: ResolvedNovaWorkloadOptions) {
    this.#meter = meter;
    this.options = options;
  }

  run(task: ComputeTaskName, client: pg.Client, host: ComputeHost): Promise<void> {
    switch (task) {
      case 'update_available_resource':
        return this.#updateAvailableResource(client, host);
      case '_poll_bandwidth_usage':
        return this.#pollBandwidthUsage(client, host);
      case '_instance_usage_audit':
        return this.#instanceUsageAudit(client, host);
      case '_poll_volume_usage':
        return this.#pollVolumeUsage(client, host);
    }
  }

  /** The resource tracker: read the node, its instances and migrations (replica), write the usage (primary). */
  async #updateAvailableResource(client: pg.Client, host: ComputeHost): Promise<void> {
    const task = 'update_available_resource';
    const instances = await this.#meter.transaction(client, task, 'reader', async () => {
      await this.#meter.exec(client, task, 'replica-read',
        `SELECT id, vcpus, vcpus_used, memory_mb, memory_mb_used, running_vms
           FROM compute_nodes WHERE host = $1 AND hypervisor_hostname = $2 AND deleted = 0`,
        [host.name, host.node]);
      const found = await this.#meter.exec<{ uuid: string; vcpus: number; memory_mb: number }>(client, task, 'replica-read',
        `SELECT uuid, vcpus, memory_mb, vm_state, task_state
           FROM instances WHERE host = $1 AND node = $2 AND deleted = 0`,
        [host.name, host.node]);
      await this.#meter.exec(client, task, 'replica-read',
        `SELECT id, instance_uuid, source_compute, dest_compute, status
           FROM migrations
          WHERE (source_compute = $1 OR dest_compute = $1) AND deleted = 0 AND NOT (status = ANY($2::varchar[]))`,
        [host.name, FINISHED_MIGRATION_STATES]);
      return found;
    });
    let vcpus = 0;
    let memory = 0;
    for (const i of instances.rows) {
      vcpus += i.vcpus;
      memory += i.memory_mb;
    }
    const writer = this.#writerOf(host, client);
    await this.#meter.transaction(writer, task, 'writer', () => this.#meter.exec(writer, task, 'write',
      `UPDATE compute_nodes SET vcpus_used = $3, memory_mb_used = $4, running_vms = $5, updated_at = now()
        WHERE host = $1 AND hypervisor_hostname = $2 AND deleted = 0`,
      [host.name, host.node, vcpus, memory, instances.rows.length]));
  }

  /** The start of the audit period containing `t` (Nova's bandwidth and usage periods). */
  #periodStart(t: number): Date {
    const p = this.options.auditPeriodMs;
    return new Date(Math.floor(t / p) * p);
  }

  /**
   * The hypervisor's counters for one instance: they grow with traffic, wrap at 2^32, and restart from
   * zero when the guest reboots (with probability counterResetProbability), which is what makes Nova's
   * rollover handling necessary.
   */
  #hypervisorCounters(host: ComputeHost, uuid: string): { in: number; out: number } {
    const r = this.options.random;
    const prev = host.counters.get(uuid);
    let next: { in: number; out: number };
    if (prev === undefined) {
      // A guest that has been up for a while: counters anywhere in their range.
      next = { in: Math.floor(r() * COUNTER_WRAP), out: Math.floor(r() * COUNTER_WRAP) };
    } else if (r() < this.options.counterResetProbability) {
      next = { in: Math.floor(r() * 100_000), out: Math.floor(r() * 50_000) };
    } else {
      next = { in: (prev.in + Math.floor(r() * 1_000_000)) % COUNTER_WRAP, out: (prev.out + Math.floor(r() * 500_000)) % COUNTER_WRAP };
    }
    host.counters.set(uuid, next);
    return next;
  }

  /**
   * Bandwidth polling, as nova/compute/manager.py _poll_bandwidth_usage: read the host's instances and
   * the cached usage of this period, or else the last counters of the previous period (replica); add
   * each counter's growth since the last poll (a counter below its last value has rolled over: the whole
   * value is new traffic); upsert the usage and the new counters (primary).
   */
  async #pollBandwidthUsage(client: pg.Client, host: ComputeHost): Promise<void> {
    const task = '_poll_bandwidth_usage';
    const startPeriod = this.#periodStart(Date.now());
    const prevPeriod = new Date(startPeriod.getTime() - this.options.auditPeriodMs);
    type Usage = { uuid: string; mac: string; bw_in: string; bw_out: string; last_ctr_in: string; last_ctr_out: string };
    const key = (uuid: string, mac: string): string => `${uuid}/${mac}`;
    const read = await this.#meter.transaction(client, task, 'reader', async () => {
      const instances = await this.#meter.exec<{ uuid: string }>(client, task, 'replica-read',
        `SELECT uuid FROM instances WHERE host = $1 AND deleted = 0 AND vm_state = 'active'`,
        [host.name]);
      if (instances.rows.length === 0) return undefined;
      const counters = instances.rows.map((row) => ({ uuid: row.uuid, mac: macFor(row.uuid), ...this.#hypervisorCounters(host, row.uuid) }));
      const uuids = counters.map((c) => c.uuid);
      // Nova reads these one instance at a time (BandwidthUsage.get_by_instance_uuid_and_mac, use_slave);
      // one statement per host and period keeps the same rows and the same replica/primary split.
      const current = await this.#meter.exec<Usage>(client, task, 'replica-read',
        `SELECT uuid, mac, bw_in, bw_out, last_ctr_in, last_ctr_out
           FROM bw_usage_cache WHERE start_period = $1 AND uuid = ANY($2::varchar[]) AND deleted = 0`,
        [startPeriod, uuids]);
      const thisPeriod = new Map(current.rows.map((r) => [key(r.uuid, r.mac), r]));
      const missing = counters.filter((c) => !thisPeriod.has(key(c.uuid, c.mac))).map((c) => c.uuid);
      let lastPeriod = new Map<string, Usage>();
      if (missing.length > 0) {
        const previous = await this.#meter.exec<Usage>(client, task, 'replica-read',
          `SELECT uuid, mac, bw_in, bw_out, last_ctr_in, last_ctr_out
             FROM bw_usage_cache WHERE start_period = $1 AND uuid = ANY($2::varchar[]) AND deleted = 0`,
          [prevPeriod, missing]);
        lastPeriod = new Map(previous.rows.map((r) => [key(r.uuid, r.mac), r]));
      }
      return { counters, thisPeriod, lastPeriod };
    });
    if (read === undefined) return;
    const { counters, thisPeriod, lastPeriod } = read;
    // Counters read from a replica may be a moment old; Nova's bandwidth accounting tolerates that.
    const rows = counters.map((ctr) => {
      const usage = thisPeriod.get(key(ctr.uuid, ctr.mac));
      const previous = usage ?? lastPeriod.get(key(ctr.uuid, ctr.mac));
      // A new period starts at 0 but continues from the previous period's counters.
      let bwIn = usage ? Number(usage.bw_in) : 0;
      let bwOut = usage ? Number(usage.bw_out) : 0;
      if (previous !== undefined) {
        const lastIn = Number(previous.last_ctr_in);
        const lastOut = Number(previous.last_ctr_out);
        if (ctr.in < lastIn || ctr.out < lastOut) this.#meter.bandwidthRollovers++;
        bwIn += ctr.in < lastIn ? ctr.in : ctr.in - lastIn;
        bwOut += ctr.out < lastOut ? ctr.out : ctr.out - lastOut;
      }
      // Without any earlier counters (a new instance) there is nothing to compare with: Nova records 0.
      return { uuid: ctr.uuid, mac: ctr.mac, bwIn, bwOut, ctrIn: ctr.in, ctrOut: ctr.out };
    });
    // One statement for the whole host (Nova calls bw_usage_update per instance; batching keeps the
    // read/write mix close to Nova's, where reads of instance data dominate).
    const writer = this.#writerOf(host, client);
    await this.#meter.transaction(writer, task, 'writer', () => this.#meter.exec(writer, task, 'write',
      `INSERT INTO bw_usage_cache (uuid, mac, start_period, bw_in, bw_out, last_ctr_in, last_ctr_out, last_refreshed, updated_at)
       SELECT u, m, $1, bi, bo, ci, co, now(), now()
         FROM unnest($2::varchar[], $3::varchar[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[]) AS t(u, m, bi, bo, ci, co)
       ON CONFLICT (uuid, mac, start_period) DO UPDATE
          SET bw_in = EXCLUDED.bw_in, bw_out = EXCLUDED.bw_out, last_ctr_in = EXCLUDED.last_ctr_in,
              last_ctr_out = EXCLUDED.last_ctr_out, last_refreshed = EXCLUDED.last_refreshed, updated_at = EXCLUDED.updated_at`,
      [startPeriod, rows.map((r) => r.uuid), rows.map((r) => r.mac), rows.map((r) => r.bwIn), rows.map((r) => r.bwOut),
        rows.map((r) => r.ctrIn), rows.map((r) => r.ctrOut)]));
  }

  /**
   * The usage audit: once per period and host. Whether the period was already audited gates a one-shot
   * action, so that read carries the primary hint; a stale answer from a replica would audit twice.
   */
  async #instanceUsageAudit(client: pg.Client, host: ComputeHost): Promise<void> {
    const task = '_instance_usage_audit';
    const now = Date.now();
    const ending = this.#periodStart(now);
    const beginning = new Date(ending.getTime() - this.options.auditPeriodMs);
    // Each step is its own unit of work in Nova (TaskLog.get, InstanceList.get_active_by_window_joined,
    // task_log_begin_task, task_log_end_task). Nova reads task_log through its main engine; here the read
    // goes through slave_connection with the hint, so the run also shows the hint holding in a transaction.
    const done = await this.#meter.transaction(client, task, 'reader', () => this.#meter.exec(client, task, 'primary-read',
      `${PRIMARY_HINT} SELECT id, state FROM task_log
        WHERE task_name = 'instance_usage_audit' AND host = $1 AND period_beginning = $2 AND period_ending = $3 AND deleted = 0`,
      [host.name, beginning, ending]));
    if (done.rows.length > 0) return;
    const active = await this.#meter.transaction(client, task, 'reader', () => this.#meter.exec(client, task, 'replica-read',
      `SELECT uuid, vm_state, launched_at, terminated_at FROM instances
        WHERE host = $1 AND (terminated_at IS NULL OR terminated_at > $2) AND (launched_at IS NULL OR launched_at < $3)`,
      [host.name, beginning, ending]));
    const writer = this.#writerOf(host, client);
    const begun = await this.#meter.transaction(writer, task, 'writer', () => this.#meter.exec(writer, task, 'write',
      `INSERT INTO task_log (task_name, state, host, period_beginning, period_ending, message, task_items)
       VALUES ('instance_usage_audit', 'RUNNING', $1, $2, $3, 'Instance usage audit started', $4)
       ON CONFLICT (task_name, host, period_beginning, period_ending) DO NOTHING`,
      [host.name, beginning, ending, active.rows.length]));
    if (begun.rowCount === 0) {
      this.#meter.duplicateAudits++;
      throw new CheckFailed(`${host.name}: audit period ${beginning.toISOString()} was already logged although the hinted read found nothing`);
    }
    await this.#meter.transaction(writer, task, 'writer', () => this.#meter.exec(writer, task, 'write',
      `UPDATE task_log SET state = 'DONE', message = $4, updated_at = now()
        WHERE task_name = 'instance_usage_audit' AND host = $1 AND period_beginning = $2 AND period_ending = $3`,
      [host.name, beginning, ending, `Instance usage audit ran for ${active.rows.length} instances`]));
  }

  /**
   * Volume polling, as _poll_volume_usage: the host's instances, then their block-device mappings, then
   * the cached usage of those volumes (replica, like _get_host_volume_bdms with use_slave); upsert each
   * volume's usage (primary).
   */
  async #pollVolumeUsage(client: pg.Client, host: ComputeHost): Promise<void> {
    const task = '_poll_volume_usage';
    const read = await this.#meter.transaction(client, task, 'reader', async () => {
      const instances = await this.#meter.exec<{ uuid: string }>(client, task, 'replica-read',
        'SELECT uuid FROM instances WHERE host = $1 AND deleted = 0',
        [host.name]);
      if (instances.rows.length === 0) return undefined;
      const volumes = await this.#meter.exec<{ instance_uuid: string; volume_id: string }>(client, task, 'replica-read',
        `SELECT instance_uuid, volume_id, device_name FROM block_device_mapping
          WHERE instance_uuid = ANY($1::varchar[]) AND deleted = 0 AND destination_type = 'volume' AND volume_id IS NOT NULL`,
        [instances.rows.map((i) => i.uuid)]);
      if (volumes.rows.length === 0) return undefined;
      const cached = await this.#meter.exec<{ volume_id: string; curr_reads: string; curr_writes: string }>(client, task, 'replica-read',
        `SELECT volume_id, curr_reads, curr_read_bytes, curr_writes, curr_write_bytes
           FROM volume_usage_cache WHERE volume_id = ANY($1::varchar[])`,
        [volumes.rows.map((v) => v.volume_id)]);
      return { volumes, cached };
    });
    if (read === undefined) return;
    const { volumes, cached } = read;
    const previous = new Map(cached.rows.map((r) => [r.volume_id, r]));
    const rows = volumes.rows.map((v) => {
      const prev = previous.get(v.volume_id);
      const reads = Number(prev?.curr_reads ?? 0) + Math.floor(this.options.random() * 100);
      const writes = Number(prev?.curr_writes ?? 0) + Math.floor(this.options.random() * 50);
      return { volume: v.volume_id, instance: v.instance_uuid, reads, writes };
    });
    const writer = this.#writerOf(host, client);
    await this.#meter.transaction(writer, task, 'writer', () => this.#meter.exec(writer, task, 'write',
      `INSERT INTO volume_usage_cache (volume_id, instance_uuid, availability_zone, curr_last_refreshed,
                                       curr_reads, curr_read_bytes, curr_writes, curr_write_bytes, updated_at)
       SELECT v, i, 'nova', now(), r, r * 4096, w, w * 4096, now()
         FROM unnest($1::varchar[], $2::varchar[], $3::bigint[], $4::bigint[]) AS t(v, i, r, w)
       ON CONFLICT (volume_id) DO UPDATE
          SET curr_last_refreshed = EXCLUDED.curr_last_refreshed, curr_reads = EXCLUDED.curr_reads,
              curr_read_bytes = EXCLUDED.curr_read_bytes, curr_writes = EXCLUDED.curr_writes,
              curr_write_bytes = EXCLUDED.curr_write_bytes, updated_at = EXCLUDED.updated_at`,
      [rows.map((r) => r.volume), rows.map((r) => r.instance), rows.map((r) => r.reads), rows.map((r) => r.writes)]));
  }

  /** The session a compute host writes through: its writer (oslo mode) or its only session. */
  #writerOf(host: ComputeHost, client: pg.Client): pg.Client {
    return host.writer ?? client;
  }
}

/** A stable fake MAC address for an instance (Nova keys bandwidth by instance and MAC). */
function macFor(uuid: string): string {
  const h = crypto.createHash('sha1').update(uuid).digest();
  return ['fa', '16', '3e', ...[0, 1, 2].map((i) => (h[i] ?? 0).toString(16).padStart(2, '0'))].join(':');
}

