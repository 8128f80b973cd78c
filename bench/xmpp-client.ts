// A minimal XMPP client over a raw TCP socket for the ejabberd scenario: in-band registration (XEP-0077), SASL
// PLAIN, resource binding, stream management (XEP-0198) for server acks, presence, and chat messages. Only what the
// benchmark needs, and light enough that the load generator is not what is measured.
import net from "node:net";

const streamHeader = (domain: string) => `<?xml version='1.0'?><stream:stream to='${domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;

/** Splits an XMPP stream into its top-level stanzas (after the stream header), as strings. */
class StanzaSplitter {
  private buffer = "";
  private depth = -1;
  private start = 0;
  private scanned = 0;

  /** Feeds received text; returns the stanzas it completed. */
  push(text: string): string[] {
    this.buffer += text;
    const out: string[] = [];
    let i = this.scanned;
    for (;;) {
      const lt = this.buffer.indexOf("<", i);
      if (lt < 0) break;
      const gt = this.buffer.indexOf(">", lt);
      if (gt < 0) {
        i = lt;
        break;
      }
      const tag = this.buffer.slice(lt, gt + 1);
      i = gt + 1;
      if (tag.startsWith("<?")) continue;
      if (tag.startsWith("<stream:stream")) {
        this.depth = 0;
        continue;
      }
      if (tag.startsWith("</stream:stream")) {
        out.push(tag);
        continue;
      }
      if (tag.startsWith("</")) {
        this.depth--;
        if (this.depth === 0) out.push(this.buffer.slice(this.start, i));
      } else if (tag.endsWith("/>")) {
        if (this.depth === 0) out.push(tag);
      } else {
        if (this.depth === 0) this.start = lt;
        this.depth++;
      }
    }
    // Keep only the unfinished stanza.
    const keepFrom = this.depth > 0 ? this.start : i;
    this.buffer = this.buffer.slice(keepFrom);
    this.start -= keepFrom;
    this.scanned = i - keepFrom;
    return out;
  }
}

/** One signed-in XMPP session. */
export class XmppClient {
  private socket!: net.Socket;
  private readonly splitter = new StanzaSplitter();
  private waiters: { match: (s: string) => boolean; resolve: (s: string) => void; reject: (e: Error) => void }[] = [];
  /** Stanzas received since stream management was enabled (what we acknowledge). */
  private inbound = 0;
  /** Stanzas sent since stream management was enabled, and how many the server has acknowledged. */
  private outbound = 0;
  private acked = 0;
  private ackWaiters: (() => void)[] = [];
  private smEnabled = false;
  onMessage: (from: string, id: string, body: string) => void = () => {};

  constructor(
    private readonly host: string,
    private readonly port: number,
    readonly domain: string,
    readonly username: string,
    private readonly password: string,
  ) {}

  get jid(): string {
    return `${this.username}@${this.domain}`;
  }

  /** Sends not yet acknowledged by the server. */
  get inFlight(): number {
    return this.outbound - this.acked;
  }

  private write(xml: string): void {
    this.socket.write(xml);
  }

  private expect(match: (s: string) => boolean): Promise<string> {
    return new Promise((resolve, reject) => this.waiters.push({ match, resolve, reject }));
  }

  private onStanza(s: string): void {
    if (s.startsWith("<r ") || s.startsWith("<r/")) {
      this.write(`<a xmlns='urn:xmpp:sm:3' h='${this.inbound}'/>`);
      return;
    }
    if (s.startsWith("<a ")) {
      this.acked = Number(/h=['"](\d+)['"]/.exec(s)?.[1] ?? this.acked);
      const waiting = this.ackWaiters;
      this.ackWaiters = [];
      for (const w of waiting) w();
      return;
    }
    if (this.smEnabled && /^<(message|presence|iq)[\s>/]/.test(s)) this.inbound++;
    const i = this.waiters.findIndex((w) => w.match(s));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w!.resolve(s);
      return;
    }
    if (s.startsWith("<message")) {
      const from = /from=['"]([^'"/]+)/.exec(s)?.[1] ?? "";
      const id = /id=['"]([^'"]+)['"]/.exec(s)?.[1] ?? "";
      const body = /<body>([^<]*)<\/body>/.exec(s)?.[1] ?? "";
      this.onMessage(from, id, body);
    }
  }

  private async openStream(): Promise<string> {
    const features = this.expect((s) => s.startsWith("<stream:features"));
    this.write(streamHeader(this.domain));
    return features;
  }

  /** Connects, registers the account when `register` is set, signs in, binds, enables acks and goes online. */
  async connect(register: boolean): Promise<void> {
    this.socket = net.connect({ host: this.host, port: this.port, noDelay: true });
    this.socket.setEncoding("utf8");
    this.socket.on("data", (d: string) => {
      for (const s of this.splitter.push(d)) this.onStanza(s);
    });
    // A server that goes away fails whatever is waiting for it, instead of leaving it pending forever.
    this.socket.on("close", () => {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`the XMPP connection of ${this.username} closed`));
    });
    await new Promise<void>((resolve, reject) => this.socket.once("connect", resolve).once("error", reject));
    await this.openStream();
    if (register) {
      const reply = this.expect((s) => s.startsWith("<iq") && s.includes("id='reg'"));
      this.write(`<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>${this.username}</username><password>${this.password}</password></query></iq>`);
      const r = await reply;
      if (!r.includes("type='result'")) throw new Error(`registration of ${this.username} failed: ${r}`);
    }
    const auth = this.expect((s) => s.startsWith("<success") || s.startsWith("<failure"));
    this.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${this.username}\0${this.password}`).toString("base64")}</auth>`);
    const a = await auth;
    if (!a.startsWith("<success")) throw new Error(`sign-in of ${this.username} failed: ${a}`);
    await this.openStream();
    const bound = this.expect((s) => s.startsWith("<iq") && s.includes("id='bind'"));
    this.write(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bench</resource></bind></iq>`);
    await bound;
    const enabled = this.expect((s) => s.startsWith("<enabled") || s.startsWith("<failed"));
    this.write(`<enable xmlns='urn:xmpp:sm:3'/>`);
    if (!(await enabled).startsWith("<enabled")) throw new Error("stream management was refused");
    this.smEnabled = true;
    this.write("<presence/>");
    this.outbound++;
  }

  /** Sends a chat message and asks for an ack; resolves once the server has acknowledged it. */
  async send(to: string, id: string, body: string): Promise<void> {
    this.write(`<message to='${to}' id='${id}' type='chat'><body>${body}</body></message><r xmlns='urn:xmpp:sm:3'/>`);
    const mine = ++this.outbound;
    while (this.acked < mine) await new Promise<void>((r) => this.ackWaiters.push(r));
  }

  close(): void {
    if (this.socket && !this.socket.destroyed) {
      this.socket.end("</stream:stream>");
      this.socket.destroy();
    }
  }
}
