import type { EventId, EventStore, StreamId } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

interface StoredEvent {
  seq: number;
  streamId: StreamId;
  message: JSONRPCMessage;
  bytes: number;
}

/** Event ids are `<seq>_<streamId>`: the stream can be told from an id even after its event was evicted. */
function parseEventId(id: EventId): { seq: number; streamId: StreamId } | undefined {
  const cut = id.indexOf('_');
  const seq = Number(id.slice(0, cut));
  if (cut <= 0 || !Number.isSafeInteger(seq)) return undefined;
  return { seq, streamId: id.slice(cut + 1) };
}

/**
 * One MCP session's recent server-to-client messages, for `Last-Event-ID` resumption. It keeps the
 * newest `maxEvents` events and at most `maxBytes` of them; a client that resumes from an evicted event
 * gets what is still kept of that stream (the oldest are gone, as with any bounded replay buffer).
 */
export class BoundedEventStore implements EventStore {
  private readonly events: StoredEvent[] = [];
  private bytes = 0;
  private seq = 0;

  constructor(
    private readonly maxEvents = 1000,
    private readonly maxBytes = 4 * 1024 * 1024,
  ) {}

  storeEvent(streamId: StreamId, message: JSONRPCMessage): Promise<EventId> {
    const seq = ++this.seq;
    const bytes = JSON.stringify(message).length;
    this.events.push({ seq, streamId, message, bytes });
    this.bytes += bytes;
    while (this.events.length > this.maxEvents || (this.bytes > this.maxBytes && this.events.length > 1)) {
      this.bytes -= this.events.shift()!.bytes;
    }
    return Promise.resolve(`${seq}_${streamId}`);
  }

  getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined> {
    return Promise.resolve(parseEventId(eventId)?.streamId);
  }

  async replayEventsAfter(lastEventId: EventId, { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> }): Promise<StreamId> {
    const last = parseEventId(lastEventId);
    if (!last) throw new Error(`event id '${lastEventId}' is not one this gateway issued`);
    for (const e of this.events.filter((e) => e.streamId === last.streamId && e.seq > last.seq)) {
      // Priming events (empty messages that only carry an id) are not replayed.
      if ('jsonrpc' in e.message) await send(`${e.seq}_${e.streamId}`, e.message);
    }
    return last.streamId;
  }

  /** Bytes held (tests and logs). */
  get size(): { events: number; bytes: number } {
    return { events: this.events.length, bytes: this.bytes };
  }
}
