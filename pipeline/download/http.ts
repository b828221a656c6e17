import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP } from 'node:net';

/**
 * The project's HTTP GET (downloads and posters), and its address policy for URLs that come from
 * data (poster URLs), which must reach only the public internet:
 * the address of every hop is checked, not the host's name. A name is resolved once, every
 * address it resolves to is checked, and the connection goes to that checked address (the
 * request's own `lookup`), so a name that resolves to 127.0.0.1, or that resolves elsewhere on
 * the second ask, gets no further. Redirects are followed by hand, each hop checked the same
 * way, http(s) only. IPv4 in IPv6 (`::ffff:127.0.0.1`, `::ffff:7f00:1`, NAT64 `64:ff9b::`) is
 * checked as the IPv4 address it holds.
 */

/** Loopback, private, link-local, shared, reserved, multicast and unspecified ranges. */
const NOT_PUBLIC = new BlockList();
for (const [net, prefix] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) {
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['2001:db8::', 32], ['100::', 64]] as const) {
  NOT_PUBLIC.addSubnet(net, prefix, 'ipv6');
}

/** The 16 bytes of an IPv6 address (dotted IPv4 tails included). */
function ipv6Bytes(address: string): number[] {
  let text = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = text.slice(0, -dotted[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const groups = (s: string | undefined) => (s ? s.split(':').filter(Boolean).map((g) => parseInt(g, 16)) : []);
  const left = groups(head);
  const right = groups(tail);
  const all = tail === undefined ? left : [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

/** An IPv4 address carried inside an IPv6 one (mapped, compatible or NAT64), if any. */
function embeddedIpv4(address: string): string | undefined {
  const bytes = ipv6Bytes(address);
  const zeros = (from: number, to: number) => bytes.slice(from, to).every((b) => b === 0);
  const mapped = zeros(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff;
  const compatible = zeros(0, 12) && !zeros(12, 16) && !(zeros(12, 15) && bytes[15] === 1);
  const nat64 = bytes[0] === 0x00 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && zeros(4, 12);
  return mapped || compatible || nat64 ? bytes.slice(12).join('.') : undefined;
}

/** True for an address that is not on the public internet. */
export function isPrivateAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  const family = isIP(bare);
  if (family === 4) return NOT_PUBLIC.check(bare, 'ipv4');
  if (family === 6) {
    const inner = embeddedIpv4(bare);
    return inner ? NOT_PUBLIC.check(inner, 'ipv4') : NOT_PUBLIC.check(bare, 'ipv6');
  }
  return true;
}

export type Lookup = (hostname: string, callback: (error: Error | null, addresses: LookupAddress[]) => void) => void;
const systemLookup: Lookup = (hostname, callback) => dnsLookup(hostname, { all: true }, callback);

export interface GetOptions {
  headers?: Record<string, string>;
  /** Milliseconds without a byte (or an answer) before the request is given up. */
  timeoutMs: number;
  maxRedirects?: number;
  /** Which addresses may be connected to (every address by default); checked on every hop, after resolving. */
  allowed?: (address: string) => boolean;
  /** How names are resolved (the system's resolver). */
  lookup?: Lookup;
}

/** A redirect the client will not follow (a loop, another scheme) or an address it may not reach: not worth a retry. */
export class RefusedAddress extends Error {}

/**
 * A GET that follows redirects by hand: http(s) only, at most `maxRedirects`, credentials
 * dropped when a redirect leaves the origin (a hub's CDN), and with `allowed`, every hop's
 * resolved address checked before connecting to it. Resolves to the final response (2xx, or
 * the error status, for the caller to judge), whose body streams every byte that arrived
 * before an error (fetch's body can drop them).
 */
export async function httpGet(url: string, options: GetOptions): Promise<IncomingMessage> {
  const { maxRedirects = 10 } = options;
  let current = new URL(url);
  let headers = options.headers ?? {};
  for (let hop = 0; ; hop++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') throw new RefusedAddress(`${hop ? 'a redirect to ' : ''}${current.protocol} URLs are not fetched (http and https only)`);
    const host = current.hostname.replace(/^\[|\]$/g, '');
    if (options.allowed && isIP(host) && !options.allowed(host)) throw new RefusedAddress(`${host} is a local or private address`);
    const response = await getOnce(current, headers, options);
    const location = response.headers.location;
    if (!response.statusCode || response.statusCode < 300 || response.statusCode >= 400 || !location) return response;
    response.resume();
    if (hop >= maxRedirects) throw new RefusedAddress(`more than ${maxRedirects} redirects (a redirect loop?)`);
    const next = new URL(location, current);
    if (next.origin !== current.origin) headers = {};
    current = next;
  }
}

function getOnce(url: URL, headers: Record<string, string>, options: GetOptions): Promise<IncomingMessage> {
  const lookup = options.lookup ?? systemLookup;
  const { allowed } = options;
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
      headers,
      timeout: options.timeoutMs,
      // A connection of its own: a kept-alive socket would skip the address check below.
      agent: false,
      // The connection goes to the address checked here, never to a second answer of the resolver.
      lookup: (hostname: string, opts: { all?: boolean }, callback: (...args: any[]) => void) => {
        lookup(hostname, (error, addresses) => {
          if (error) return callback(error);
          const refused = allowed ? addresses.find((a) => !allowed(a.address)) : undefined;
          if (refused || !addresses.length) return callback(new RefusedAddress(`${hostname} resolves to ${refused?.address ?? 'nothing'}, a local or private address`));
          if (opts?.all) callback(null, addresses);
          else callback(null, addresses[0]!.address, addresses[0]!.family);
        });
      },
    });
    request.on('response', (response) => {
      // The idle timeout covers the body too: a server that stops sending is given up on.
      response.setTimeout?.(options.timeoutMs, () => response.destroy(new TimeoutError(`no data for ${options.timeoutMs / 1000}s`)));
      resolve(response);
    });
    request.on('timeout', () => request.destroy(new TimeoutError(`no answer in ${options.timeoutMs / 1000}s`)));
    request.on('error', reject);
    request.end();
  });
}

export class TimeoutError extends Error {}

export interface PublicFetchOptions {
  maxBytes: number;
  timeoutMs: number;
  /** Let private addresses through (report.allow_private_poster_urls). */
  allowPrivate: boolean;
  maxRedirects?: number;
  lookup?: Lookup;
  /** Which addresses count as public (tests stand a "public" server on a loopback address). */
  isPublic?: (address: string) => boolean;
}

/** The body of `url`, fetched as above; every refusal and failure is an Error whose message says which hop and why. */
export async function fetchPublic(url: string, options: PublicFetchOptions): Promise<Buffer> {
  const isPublic = options.isPublic ?? ((address: string) => !isPrivateAddress(address));
  const allowed = options.allowPrivate ? undefined : isPublic;
  let response: IncomingMessage;
  try {
    response = await httpGet(url, { timeoutMs: options.timeoutMs, maxRedirects: options.maxRedirects ?? 5, allowed, lookup: options.lookup });
  } catch (error) {
    if (error instanceof RefusedAddress && /private address/.test(error.message)) throw new RefusedAddress(`${error.message} (report.allow_private_poster_urls: true allows it)`);
    throw error;
  }
  if (response.statusCode !== 200) {
    response.resume();
    throw new Error(`HTTP ${response.statusCode}`);
  }
  return readBody(response, options.maxBytes);
}

async function readBody(response: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of response) {
    bytes += (chunk as Buffer).length;
    if (bytes > maxBytes) {
      response.destroy();
      throw new Error(`larger than report.poster_max_bytes (${maxBytes} bytes)`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
