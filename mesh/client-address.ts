// The client's address for per-address limits. The public edge appends the address it saw on the socket to
// `x-forwarded-for` (as a proxy does); whoever keys a limit on the address walks that list from the right and stops
// at the first hop that is not a configured trusted proxy. A client can prepend anything, but never past the edge.
import { BlockList, isIP } from "node:net";

/** How many forwarded hops are kept and walked: a client-inflated header costs no more than this. */
const maxHops = 16;

/** An IPv4 address seen through an IPv6 socket (::ffff:10.0.0.1) is the IPv4 address. */
function normalize(address: string): string {
  const trimmed = address.trim();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(trimmed);
  return mapped ? mapped[1]! : trimmed;
}

/** The hops of an `x-forwarded-for` value, client first, at most the last `maxHops`. */
function hops(header: string | null | undefined): string[] {
  if (header === null || header === undefined || header === "") return [];
  return header.split(",").slice(-maxHops).map(normalize).filter((h) => h !== "");
}

/** The `x-forwarded-for` the public edge passes on: what arrived (its last hops) with the socket's address appended. */
export function appendForwardedFor(header: string | string[] | undefined, socketAddress: string | undefined): string {
  const prior = hops(Array.isArray(header) ? header.join(",") : header).slice(-(maxHops - 1));
  return [...prior, normalize(socketAddress ?? "unknown")].join(", ");
}

/** The proxies whose `x-forwarded-for` entries are believed (IM_TRUSTED_PROXIES): addresses and CIDR ranges. */
export class TrustedProxies {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  /** Each entry is an IP address or a CIDR range (10.0.0.0/8, fd00::/8); a malformed one throws. */
  constructor(entries: readonly string[] = []) {
    for (const entry of entries) {
      const [address, bits] = entry.trim().split("/");
      const family = isIP(address ?? "");
      if (family === 0) throw new Error(`"${entry}" is not an IP address or CIDR range`);
      const type = family === 4 ? "ipv4" : "ipv6";
      if (bits === undefined) this.list.addAddress(address!, type);
      else {
        const prefix = Number(bits);
        if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) throw new Error(`"${entry}" has an invalid prefix length`);
        this.list.addSubnet(address!, prefix, type);
      }
    }
    this.empty = entries.length === 0;
  }

  /** Whether the address is one of the trusted proxies. */
  has(address: string): boolean {
    if (this.empty) return false;
    const family = isIP(address);
    return family !== 0 && this.list.check(address, family === 4 ? "ipv4" : "ipv6");
  }
}

/**
 * The client's address from the `x-forwarded-for` the edge wrote: the rightmost hop that is not a trusted proxy
 * (the socket's address when none is configured), or the leftmost when every hop is trusted; "unknown" without one.
 */
export function clientAddress(header: string | null | undefined, trusted: TrustedProxies): string {
  const list = hops(header);
  for (let i = list.length - 1; i >= 0; i--) if (!trusted.has(list[i]!)) return list[i]!;
  return list[0] ?? "unknown";
}
