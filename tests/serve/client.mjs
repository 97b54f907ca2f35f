// client.mjs - the official openai npm client against a running vlmchat --serve.
//   node client.mjs BASE_URL API_KEY IMAGE.png EXPECTED_ANSWER QUESTION
// EXPECTED_ANSWER is what `vlmchat -p QUESTION --image IMAGE --temp 0` printed.
// Prints one line per failed check and closes with "client: N passed, N failed".
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const [baseURL, apiKey, imagePath, expected, question] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
const dataUrl = 'data:image/png;base64,' + readFileSync(imagePath).toString('base64');
const ask = (extra = {}) => ({
  model: 'demo',
  temperature: 0,
  messages: [{ role: 'user', content: [
    { type: 'image_url', image_url: { url: dataUrl } },
    { type: 'text', text: question },
  ] }],
  ...extra,
});

let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++;
  else { failed++; console.log(`FAIL: ${name} ${detail}`); }
}
async function expectError(name, promise, status, pattern) {
  try {
    await promise;
    check(name, false, '(no error)');
  } catch (e) {
    check(name, e instanceof OpenAI.APIError && e.status === status && pattern.test(e.message),
          `(${e.status} ${e.message})`);
  }
}

// models
const models = await client.models.list();
check('models.list has the model', models.data.length === 1 && models.data[0].id === 'demo');

// a plain answer equals the command line's greedy answer
const r = await client.chat.completions.create(ask());
check('answer equals vlmchat -p', r.choices[0].message.content === expected,
      JSON.stringify(r.choices[0].message.content));
check('finish_reason stop', r.choices[0].finish_reason === 'stop');
check('usage counts', r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0 &&
      r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens);

// streaming: the deltas add up to the same answer
const stream = await client.chat.completions.create(ask({ stream: true, stream_options: { include_usage: true } }));
let text = '', chunks = 0, finish = null, usage = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    text += c.delta.content ?? '';
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check('stream text equals answer', text === expected, JSON.stringify(text));
check('stream chunks and finish', chunks >= 3 && finish === 'stop');
check('stream usage chunk', usage && usage.completion_tokens === r.usage.completion_tokens);

// a follow-up turn (the client resends the history) still answers like a fresh run
const follow = await client.chat.completions.create({
  ...ask(),
  messages: [...ask().messages, { role: 'assistant', content: expected }, { role: 'user', content: question }],
});
check('follow-up answers', typeof follow.choices[0].message.content === 'string' &&
      follow.usage.prompt_tokens > r.usage.prompt_tokens);

// limits on generation
const one = await client.chat.completions.create(ask({ max_tokens: 1 }));
check('max_tokens 1', one.usage.completion_tokens === 1 && one.choices[0].finish_reason === 'length');
const firstWord = expected.split(' ')[0];
if (expected.includes(' ')) {
  const stopped = await client.chat.completions.create(ask({ stop: [' ' + expected.split(' ')[1]] }));
  check('stop sequence', stopped.choices[0].message.content === firstWord && stopped.choices[0].finish_reason === 'stop',
        JSON.stringify(stopped.choices[0].message.content));
}
const s1 = await client.chat.completions.create(ask({ temperature: 1.5, seed: 7, max_tokens: 12 }));
const s2 = await client.chat.completions.create(ask({ temperature: 1.5, seed: 7, max_tokens: 12 }));
check('same seed, same sample', s1.choices[0].message.content === s2.choices[0].message.content);

// errors come back as APIError with the server's message
await expectError('bad temperature is 400', client.chat.completions.create(ask({ temperature: 5 })), 400, /temperature/);
await expectError('no messages is 400', client.chat.completions.create({ model: 'demo', messages: [] }), 400, /messages/);
await expectError('broken image is 400',
  client.chat.completions.create({ ...ask(), messages: [{ role: 'user', content: [
    { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgoAAAAN' } },
    { type: 'text', text: 'hi' }] }] }), 400, /image 1/);
const wrongKey = new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 });
await expectError('wrong key is 401', wrongKey.models.list(), 401, /API key/);

// concurrent requests: all answered, each like a lone request
const many = await Promise.all(Array.from({ length: 6 }, () => client.chat.completions.create(ask())));
check('6 concurrent requests answered alike', many.every(m => m.choices[0].message.content === expected));

console.log(`client: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
