// Runs an ONNX model with ONNX Runtime for Node.js (CPU execution provider).
// Usage: node onnx_ort_run.js NODE_MODULES MODEL.onnx INPUT.f32 N,C,H,W OUTPUT_NAME OUT.f32 [BATCH]
// INPUT.f32 / OUT.f32: raw little-endian float32 arrays. Runs in batches of BATCH (default 1000),
// so the model's dynamic batch dimension is exercised with two sizes when N is not a multiple.
const path = require('path');
const fs = require('fs');
const [modules, modelPath, inputPath, dimsText, outputName, outPath, batchText] = process.argv.slice(2);
const ort = require(path.join(modules, 'onnxruntime-node'));

async function main() {
  const dims = dimsText.split(',').map(Number);
  const raw = fs.readFileSync(inputPath);
  const x = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const perSample = dims.slice(1).reduce((a, b) => a * b, 1);
  const batch = Number(batchText || 1000);
  const session = await ort.InferenceSession.create(modelPath, {executionProviders: ['cpu']});
  const parts = [];
  for (let begin = 0; begin < dims[0]; begin += batch) {
    const n = Math.min(batch, dims[0] - begin);
    const input = new ort.Tensor('float32', x.slice(begin * perSample, (begin + n) * perSample), [n, ...dims.slice(1)]);
    const out = await session.run({[session.inputNames[0]]: input});
    parts.push(Buffer.from(out[outputName].data.buffer, out[outputName].data.byteOffset, out[outputName].data.byteLength));
  }
  fs.writeFileSync(outPath, Buffer.concat(parts));
  console.log(`onnxruntime-node ${require(path.join(modules, 'onnxruntime-node/package.json')).version}: ` +
              `ran ${dims[0]} samples, inputs ${session.inputNames}, outputs ${session.outputNames}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
