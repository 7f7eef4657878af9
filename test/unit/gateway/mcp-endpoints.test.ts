import { describe, expect, it } from 'vitest';
import { splitAggregatedName } from '../../../src/gateway/mcp-servers.js';

describe('splitAggregatedName', () => {
  it('splits {mcp}__{tool} on the registered name', () => {
    expect(splitAggregatedName(['ev', 'other'], 'ev__echo')).toEqual([{ mcp: 'ev', tool: 'echo' }]);
    expect(splitAggregatedName(['ev'], 'ev__get__thing')).toEqual([{ mcp: 'ev', tool: 'get__thing' }]);
  });

  it('offers every reading when names contain the separator, longest MCP name first', () => {
    expect(splitAggregatedName(['a', 'a__b'], 'a__b__c')).toEqual([
      { mcp: 'a__b', tool: 'c' },
      { mcp: 'a', tool: 'b__c' },
    ]);
  });

  it('finds nothing for unknown MCPs or an empty tool part', () => {
    expect(splitAggregatedName(['ev'], 'other__echo')).toEqual([]);
    expect(splitAggregatedName(['ev'], 'ev__')).toEqual([]);
    expect(splitAggregatedName(['ev'], 'evecho')).toEqual([]);
  });
});
