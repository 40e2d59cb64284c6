import { readFileSync, readdirSync } from 'node:fs';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { ROOT, type Message } from './helpers.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ allErrors: true, strict: false }));
const load = (p: string) => JSON.parse(readFileSync(`${ROOT}/${p}`, 'utf8'));

const messageValidator = ajv.compile(load('test/schemas/airbyte-message.schema.json'));
const streams = readdirSync(`${ROOT}/schemas`).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
const recordValidators = Object.fromEntries(streams.map((s) => [s, ajv.compile(load(`schemas/${s}.json`))]));
const declared = Object.fromEntries(streams.map((s) => [s, Object.keys(load(`schemas/${s}.json`).properties)]));

/** Every message is a valid AirbyteMessage; every record validates against its stream's schema with no undeclared top-level field. */
export function invalidMessages(messages: Message[]): string[] {
  const problems: string[] = [];
  for (const m of messages) {
    if (!messageValidator(m)) problems.push(`${JSON.stringify(m).slice(0, 200)}: ${ajv.errorsText(messageValidator.errors)}`);
    if (m.type === 'RECORD') {
      const v = recordValidators[m.record.stream];
      if (!v) problems.push(`record of unknown stream ${m.record.stream}`);
      else if (!v(m.record.data)) problems.push(`${m.record.stream} record ${m.record.data.id}: ${ajv.errorsText(v.errors)}`);
      const extra = Object.keys(m.record.data).filter((k) => !declared[m.record.stream]?.includes(k));
      if (extra.length) problems.push(`${m.record.stream} record has undeclared fields ${extra.join(', ')}`);
    }
  }
  return problems;
}
