import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { FINGERPRINT_COMPONENTS, hashComponent, type FingerprintComponent, type FingerprintHashes } from '../protocol';

/**
 * Where the raw machine facts come from. Production reads them with `systeminformation`; tests
 * pass a fake source with chosen component sets. Raw values never leave this process: only
 * salted HMACs (protocol/fingerprint.ts) are stored or sent.
 */
export type RawFingerprint = Record<FingerprintComponent, string>;
export type FingerprintSource = { read(): Promise<RawFingerprint> };

const UNKNOWN = 'unknown';
const join = (...parts: Array<string | number | null | undefined>) =>
  parts
    .filter((p) => p !== undefined && p !== null && String(p).trim() !== '')
    .join(' ')
    .trim();

function readMachineId(): string {
  for (const f of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const id = readFileSync(f, 'utf8').trim();
      if (id) return `machine-id ${id}`;
    } catch {
      // try the next
    }
  }
  return '';
}

/** The real machine, read with systeminformation (loaded lazily: it is the agent's largest dependency). */
export function createSystemFingerprintSource(): FingerprintSource {
  return {
    async read() {
      const si = await import('systeminformation');
      const [cpu, board, disks, defaultIface, ifaces, system] = await Promise.all([
        si.cpu(),
        si.baseboard(),
        si.diskLayout(),
        si.networkInterfaceDefault(),
        si.networkInterfaces(),
        si.system(),
      ]);
      // Containers and some VMs expose no DMI board data: fall back to the system UUID, then machine-id.
      const baseboard =
        join(board.manufacturer, board.model, board.serial) ||
        join(system.manufacturer, system.model, system.uuid, system.serial) ||
        readMachineId();
      let disk = '';
      const physical = [...disks].sort((a, b) => a.device.localeCompare(b.device))[0];
      if (physical) disk = join(physical.type, physical.name, physical.serialNum, physical.size);
      else {
        const blocks = await si.blockDevices();
        const first = blocks.filter((b) => b.type === 'disk').sort((a, b) => a.name.localeCompare(b.name))[0];
        if (first) disk = join(first.name, first.model, first.serial, first.size);
      }
      const list = Array.isArray(ifaces) ? ifaces : [ifaces];
      const primary =
        list.find((i) => i.iface === defaultIface) ??
        list.find((i) => !i.internal && !i.virtual && i.mac && i.mac !== '00:00:00:00:00:00');
      return {
        cpu:
          join(
            cpu.manufacturer,
            cpu.brand,
            cpu.vendor,
            `family ${cpu.family}`,
            `model ${cpu.model}`,
            `stepping ${cpu.stepping}`,
            `cores ${cpu.physicalCores}`,
          ) || UNKNOWN,
        baseboard: baseboard || UNKNOWN,
        disk: disk || UNKNOWN,
        mac: primary?.mac || UNKNOWN,
        hostname: hostname() || UNKNOWN,
      };
    },
  };
}

/** Salted component hashes of a raw reading (protocol/fingerprint.ts). */
export function hashFingerprint(salt: string, raw: RawFingerprint): FingerprintHashes {
  const out = {} as FingerprintHashes;
  for (const c of FINGERPRINT_COMPONENTS) out[c] = hashComponent(salt, c, raw[c] ?? UNKNOWN);
  return out;
}

/** A fixed reading whose components can be changed: the fake machine for tests. */
export function createStaticFingerprintSource(
  raw: RawFingerprint,
): FingerprintSource & { set(next: Partial<RawFingerprint>): void } {
  let current = { ...raw };
  return {
    read: async () => ({ ...current }),
    set: (next) => void (current = { ...current, ...next }),
  };
}
