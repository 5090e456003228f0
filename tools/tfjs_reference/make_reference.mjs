// Reference outputs of TF.js graph models with the pure-JavaScript CPU backend of @tensorflow/tfjs.
//
// Usage: node make_reference.mjs REQUEST.json
//
// REQUEST.json: {"jobs": [{"name": "...", "model_json": "/path/NAME.json", "input": "/path/x.f32",
//                          "input_shape": [N, H, W, C], "outputs": ["node/name", ...], "result": "/path/out"}]}
// The model's weight shards are read from the paths in its weightsManifest, relative to model_json.
// `input` holds N*H*W*C little-endian float32 values (NHWC). For each job this writes RESULT.json
// ({"outputs": {name: {"shape": [...], "file": "RESULT.NAME_INDEX.f32"}}, "tfjs": version, "backend"})
// and one float32 file per output node, in the order asked for.
//
// Driven by tools/make_tfjs_fixtures.py; run `npm install` in this folder first.

import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

function toArrayBuffer(buf) {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

async function loadGraphModel(modelJsonPath) {
  const modelJson = JSON.parse(fs.readFileSync(modelJsonPath, 'utf8'));
  const dir = path.dirname(modelJsonPath);
  const weightSpecs = [];
  const shards = [];
  for (const group of modelJson.weightsManifest) {
    for (const p of group.paths) shards.push(fs.readFileSync(path.join(dir, p)));
    weightSpecs.push(...group.weights);
  }
  const artifacts = {
    modelTopology: modelJson.modelTopology,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy,
    signature: modelJson.signature,
    userDefinedMetadata: modelJson.userDefinedMetadata,
    weightSpecs,
    weightData: toArrayBuffer(Buffer.concat(shards)),
  };
  return tf.loadGraphModel(tf.io.fromMemory(artifacts));
}

async function runJob(job) {
  const model = await loadGraphModel(job.model_json);
  const raw = fs.readFileSync(job.input);
  const values = new Float32Array(toArrayBuffer(raw));
  const x = tf.tensor(values, job.input_shape, 'float32');
  let ys = model.execute(x, job.outputs);
  if (!Array.isArray(ys)) ys = [ys];
  const result = { outputs: {}, tfjs: tf.version.tfjs, backend: tf.getBackend() };
  for (let i = 0; i < job.outputs.length; i++) {
    const file = `${job.result}.${i}.f32`;
    const data = await ys[i].data();
    fs.writeFileSync(file, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    result.outputs[job.outputs[i]] = { shape: ys[i].shape, file };
  }
  fs.writeFileSync(`${job.result}.json`, JSON.stringify(result, null, 1));
  tf.dispose([x, ...ys]);
  model.dispose();
  console.log(`${job.name}: ${job.outputs.map((o, i) => `${o} ${JSON.stringify(ys[i].shape)}`).join(', ')}`);
}

async function main() {
  const request = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  await tf.setBackend('cpu');
  await tf.ready();
  console.log(`tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}`);
  for (const job of request.jobs) await runJob(job);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
