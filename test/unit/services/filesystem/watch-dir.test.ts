import { create, toJsonString } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { EntryInfoSchema, EventType, WatchDirResponseSchema } from '../../../../src/gen/filesystem/filesystem_pb.js';
import { toFilesystemEvent, watchEventJson } from '../../../../src/services/filesystem/watch-dir.js';
import type { WatchEvent } from '../../../../src/services/filesystem/watcher.js';

const protobufJson = (e: WatchEvent): string =>
  toJsonString(WatchDirResponseSchema, create(WatchDirResponseSchema, { event: { case: 'filesystem', value: toFilesystemEvent(e) } }));

describe('watchEventJson', () => {
  it('writes what protobuf-es writes for every event type and any name', () => {
    const names = ['a.txt', 'dir/nested file', 'quote"back\\slash', 'tab\tnew\nline\u0001', 'ünïcødé ☃ 𝄞', '\u2028\u2029', 'x'.repeat(4096)];
    const types = [EventType.CREATE, EventType.WRITE, EventType.REMOVE, EventType.RENAME, EventType.CHMOD];
    for (const name of names) {
      for (const type of types) {
        const json = watchEventJson({ name, type });
        expect(json).toBe(protobufJson({ name, type }));
        expect(JSON.parse(json!)).toEqual({ filesystem: { name, type: `EVENT_TYPE_${EventType[type]}` } });
      }
    }
  });

  it('leaves events with an entry or a default field to protobuf-es', () => {
    expect(watchEventJson({ name: '', type: EventType.CREATE })).toBeUndefined();
    expect(watchEventJson({ name: 'a', type: EventType.UNSPECIFIED })).toBeUndefined();
    expect(watchEventJson({ name: 'a', type: 99 as EventType })).toBeUndefined();
    expect(watchEventJson({ name: 'a', type: EventType.WRITE, entry: create(EntryInfoSchema, { name: 'a', path: '/a' }) })).toBeUndefined();
  });
});
