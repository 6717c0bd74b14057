// Type declarations for vigil.js, the browser client of vigil.

export type State = "connecting" | "open" | "reconnecting" | "offline" | "closed";
export declare const CONNECTING: "connecting";
export declare const OPEN: "open";
export declare const RECONNECTING: "reconnecting";
export declare const OFFLINE: "offline";
export declare const CLOSED: "closed";

/** Whether to reconnect after close code `code` (docs/PROTOCOL.md). */
export declare function retryable(code: number): boolean;
/** The options' defaults (milliseconds), the same as the Go client's. */
export declare const DEFAULTS: Readonly<Required<Pick<Options,
  "pingInterval" | "pongTimeout" | "connectTimeout" | "ping" | "pong" | "backoffBase" |
  "backoffMax" | "stableAfter" | "drainWindow" | "maxAttempts" | "queue" | "awayHidden" | "awayIdle">>>;
/** Full-jitter delay in ms before reconnect n (Options.backoffBase): uniform in [0, min(max, base·2^n)). */
export declare function backoff(n: number, base?: number, max?: number, rnd?: () => number): number;

export interface Options {
  /** ms of silence before an application ping. Default 25000. */
  pingInterval?: number;
  /** ms to wait for any message after a ping before the socket counts as dead. Default 10000. */
  pongTimeout?: number;
  /** ms for a socket to open. Default 10000. */
  connectTimeout?: number;
  /** Application ping and pong texts. Default "ping" and "pong". */
  ping?: string;
  pong?: string;
  /**
   * Backoff base and cap in ms: reconnect n since the last stable connection
   * (n from 0: the first attempt after a drop, or the second attempt of the
   * first connect) waits a random time in [0, min(backoffMax, backoffBase·2^n)).
   * Default 500 and 30000.
   */
  backoffBase?: number;
  backoffMax?: number;
  /**
   * ms a connection must stay open for the backoff to start again from n = 0;
   * after a connection that closed sooner, n keeps growing, so a server that
   * accepts and drops at once is not hammered. Default 10000.
   */
  stableAfter?: number;
  /** ms over which the first reconnect after the server closed with 1001 (draining) is spread, when the backoff is at n = 0. Default 5000. */
  drainWindow?: number;
  /**
   * Give up (state closed, detail.gaveUp) after this many failed attempts in
   * a row: the first connect makes at most maxAttempts attempts, and so does
   * each reconnect after a drop (the drop is not one of them). An attempt
   * that opens a connection succeeds, however soon it drops; for
   * VigilHeartbeat, a heartbeat that fails while open is such a drop. Going
   * offline and back online starts the count again. 0: never. Default 0.
   */
  maxAttempts?: number;
  /** Messages held by send() while not open; 0: none. Default 64. */
  queue?: number;
  /**
   * ms a page must stay hidden before its user counts as away, reported to
   * the server (docs/PROTOCOL.md, "Activity"); becoming visible again is
   * back. 0: never. Default 60000.
   */
  awayHidden?: number;
  /**
   * ms without input (keydown, pointerdown, pointermove, wheel, touchstart,
   * focus) before the user counts as away; the first input is back. 0:
   * never. Default 300000.
   */
  awayIdle?: number;
  /** WebSocket subprotocols. */
  protocols?: string | string[];
  /** For tests and other runtimes: the WebSocket class, the clock, and the objects that fire online/offline/pagehide and visibilitychange. */
  WebSocket?: typeof WebSocket;
  now?: () => number;
  window?: EventTarget | null;
  document?: (EventTarget & { visibilityState?: string }) | null;
  navigator?: { onLine?: boolean; sendBeacon?(url: string, data?: BodyInit): boolean } | null;
}

export interface StateDetail {
  state: State;
  prev: State;
  /**
   * Failed attempts in a row before the one announced (reconnecting): 0 for
   * the first attempt after a drop, which is not a failed attempt. For open,
   * the attempts that failed before it; for closed, those that failed since
   * the last open (maxAttempts when it gave up).
   */
  attempt: number;
  /** ms until the next attempt (reconnecting). */
  delay?: number;
  /** Close code and reason of the connection that ended. */
  code?: number;
  reason?: string;
  /** HTTP status of a failed heartbeat (VigilHeartbeat). */
  status?: number;
  gaveUp?: boolean;
}

export type StateEvent = CustomEvent<StateDetail>;

/** The 'activity' event's detail: the user went away (idle: ms idle already) or came back (idle 0). */
export interface ActivityDetail {
  away: boolean;
  idle: number;
}

interface StateEvents {
  statechange: StateEvent;
  connecting: StateEvent;
  open: StateEvent;
  reconnecting: StateEvent;
  offline: StateEvent;
  closed: StateEvent;
  /** The user went away or came back (Options.awayHidden, awayIdle); the server has been told, or will be on connecting. */
  activity: CustomEvent<ActivityDetail>;
}

/** A WebSocket that stays connected. */
export declare class VigilSocket extends EventTarget {
  constructor(url: string, opts?: Options);
  readonly url: string;
  readonly state: State;
  /** Failed attempts in a row (StateDetail.attempt). */
  readonly attempt: number;
  /** Whether the user is away (Options.awayHidden, awayIdle). */
  readonly away: boolean;
  /** Sends, or queues while not open; false when neither. */
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): boolean;
  /** Closes cleanly; never reconnects. */
  close(code?: number, reason?: string): void;
  addEventListener<K extends keyof StateEvents>(type: K, listener: (ev: StateEvents[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: "message", listener: (ev: MessageEvent) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
}

export interface HeartbeatOptions extends Options {
  /** The session (tab) ID. Default: random. */
  session?: string;
  fetch?: typeof fetch;
}

/** HTTP heartbeats for pages without a WebSocket, with a leave beacon on pagehide. */
export declare class VigilHeartbeat extends EventTarget {
  constructor(prefix: string, opts?: HeartbeatOptions);
  readonly prefix: string;
  readonly session: string;
  readonly state: State;
  /** Failed heartbeats in a row, not counting one that failed while open (StateDetail.attempt). */
  readonly attempt: number;
  /** The server's interval_ms, once known. */
  readonly interval: number;
  readonly ttl?: number;
  /** Whether the user is away (Options.awayHidden, awayIdle); each heartbeat sends its state, a change at once. */
  readonly away: boolean;
  /** Stops; with leave (default) tells the server the session ended. */
  stop(leave?: boolean): void;
  addEventListener<K extends keyof StateEvents>(type: K, listener: (ev: StateEvents[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
}

export interface FeedClient {
  id: string;
  /** "online", "away" or "offline" (snapshot entries; over a store with states). */
  state?: string;
  /** RFC 3339: when the user was last active (snapshot entries). */
  last_active?: string;
  /** RFC 3339. */
  since?: string;
  seq?: number;
  reason?: string;
}

/** A room's transition on the feed: a client joined or left a room, or a session in it set new metadata. */
export interface FeedRoomEvent {
  id: string;
  room: string;
  session?: string;
  /** The session's metadata (join, update). */
  meta?: unknown;
  /** Why the client left (leave). */
  reason?: string;
  seq: number;
  /** RFC 3339. */
  time?: string;
  node?: string;
}

/** A client's presence state; more (such as "busy") may come: treat an unknown one as online. */
export type PresenceState = "online" | "away" | "offline" | (string & {});

/** One member's latest state in a coalesced feed. Times are RFC 3339. */
export interface FeedMember {
  id: string;
  state: PresenceState;
  /** The client's sessions (in the room, for a room feed). */
  sessions?: number;
  /** The member's metadata in the room: the one its sessions set last (room feeds). */
  meta?: unknown;
  /** When it came online (node, ids) or joined the room (room). */
  since?: string;
  last_seen?: string;
  /** When the user was last there (distinct from last_seen, the last heartbeat). */
  last_active?: string;
}

/** The snapshot of a coalesced feed. */
export interface FeedSnapshot {
  scope: "room" | "node" | "ids";
  room?: string;
  /** Members in the room (room), online clients (node), online clients among the IDs (ids). */
  count: number;
  /** The scope is larger than the server's CountOnlyAbove: no members, counts only. */
  count_only: boolean;
  members: FeedMember[];
  window_ms: number;
}

/** A diff of a coalesced feed: the latest state of each member named since the last message. */
export interface FeedDiff {
  count?: number;
  set?: FeedMember[];
  /** IDs that left the room (room) or went offline (node). */
  gone?: string[];
}

export interface PresenceFeedOptions {
  withCredentials?: boolean;
  EventSource?: typeof EventSource;
  /** Follow one room's members (coalesced feed). */
  room?: string;
  /** Follow these client IDs, a friends list (coalesced feed). */
  ids?: string[];
  /** Follow the node's online clients as a coalesced feed. */
  coalesce?: boolean;
  /** ms between two messages at least; not below the server's window (250 by default). */
  window?: number;
}

interface CoalescedFeedEvents {
  snapshot: CustomEvent<FeedSnapshot>;
  diff: CustomEvent<FeedDiff>;
  /** A member entered the room (room). */
  join: CustomEvent<FeedMember>;
  /** A member left the room (room): detail {id}. */
  leave: CustomEvent<{ id: string }>;
  /** A client came online (node, ids). */
  online: CustomEvent<FeedMember>;
  /** A client went offline: detail {id} (node) or the member with last_seen (ids). */
  offline: CustomEvent<FeedMember | { id: string }>;
  away: CustomEvent<FeedMember>;
  back: CustomEvent<FeedMember>;
  /** The member's metadata changed (room). */
  update: CustomEvent<FeedMember>;
  change: CustomEvent<Map<string, FeedMember>>;
}

/**
 * The live presence feed over Server-Sent Events. Without room, ids, coalesce or window: the
 * version-1 feed of who is online and the rooms' transitions, one event per transition.
 * With any of them: the coalesced feed, at most one message per window, with members' states
 * and metadata in `members`.
 */
export declare class PresenceFeed extends EventTarget {
  constructor(url: string, opts?: PresenceFeedOptions);
  /** Version 1: who is online. Coalesced: the same Map as members. */
  readonly online: Map<string, FeedClient> | Map<string, FeedMember>;
  /** Whether this feed is the coalesced one. */
  readonly coalesced: boolean;
  /** Coalesced: the members, by ID. */
  readonly members?: Map<string, FeedMember>;
  /** Coalesced: the scope's count (see FeedSnapshot.count). */
  readonly count?: number;
  readonly countOnly?: boolean;
  close(): void;
  addEventListener<K extends keyof CoalescedFeedEvents>(type: K, listener: (ev: CoalescedFeedEvents[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: "snapshot", listener: (ev: CustomEvent<{ clients: FeedClient[]; truncated?: boolean }>) => void): void;
  addEventListener(type: "online" | "offline" | "away" | "back", listener: (ev: CustomEvent<FeedClient>) => void): void;
  addEventListener(type: "join" | "leave" | "update", listener: (ev: CustomEvent<FeedRoomEvent>) => void): void;
  addEventListener(type: "change", listener: (ev: CustomEvent<Map<string, FeedClient>>) => void): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
}
