// SPDX-License-Identifier: Apache-2.0
// The official storage clients, driven by tests/harness/test_stores.py to check
// what airlock-harness writes and to write what it must read:
//   node store_client.js CONFIG.json get KEY FILE      -> prints {"sha256": metadata, "size": n}
//   node store_client.js CONFIG.json put KEY FILE [SHA] -> metadata sha256 = SHA or the file's
//   node store_client.js CONFIG.json mkbucket
//   node store_client.js CONFIG.json list PREFIX       -> prints the keys as JSON
// CONFIG: {"type": "s3"|"r2"|"gcs"|"azure_blob", "endpoint", "bucket", "region",
//          "access_key_id", "secret_access_key", "account_name", "account_key"}
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const modules = path.join(__dirname, '..', 'node_modules');
const need = (name) => require(path.join(modules, name));

function s3(cfg) {
  const { S3Client } = need('@aws-sdk/client-s3');
  return new S3Client({
    endpoint: cfg.endpoint,
    region: cfg.region || 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: cfg.access_key_id, secretAccessKey: cfg.secret_access_key },
    // s3rver predates the SDK's default CRC32 trailers: ask for checksums only where required.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

function azure(cfg) {
  const { BlobServiceClient, StorageSharedKeyCredential } = need('@azure/storage-blob');
  const cred = new StorageSharedKeyCredential(cfg.account_name, cfg.account_key);
  return new BlobServiceClient(cfg.endpoint, cred).getContainerClient(cfg.bucket);
}

function gcs(cfg) {
  const { Storage } = need('@google-cloud/storage');
  return new Storage({ apiEndpoint: cfg.endpoint, projectId: 'airlock-test' }).bucket(cfg.bucket);
}

async function get(cfg, key, file) {
  let data, sha;
  if (cfg.type === 's3' || cfg.type === 'r2') {
    const { GetObjectCommand } = need('@aws-sdk/client-s3');
    const out = await s3(cfg).send(new GetObjectCommand({ Bucket: cfg.bucket, Key: key }));
    data = Buffer.from(await out.Body.transformToByteArray());
    sha = (out.Metadata || {}).sha256;
  } else if (cfg.type === 'azure_blob') {
    const blob = azure(cfg).getBlobClient(key);
    data = await blob.downloadToBuffer();
    sha = ((await blob.getProperties()).metadata || {}).sha256;
  } else {
    const f = gcs(cfg).file(key);
    [data] = await f.download();
    const [meta] = await f.getMetadata();
    sha = (meta.metadata || {}).sha256;
  }
  fs.writeFileSync(file, data);
  return { sha256: sha || null, size: data.length };
}

async function put(cfg, key, file, sha) {
  const data = fs.readFileSync(file);
  const metadata = { sha256: sha || crypto.createHash('sha256').update(data).digest('hex') };
  if (cfg.type === 's3' || cfg.type === 'r2') {
    const { PutObjectCommand } = need('@aws-sdk/client-s3');
    await s3(cfg).send(new PutObjectCommand({ Bucket: cfg.bucket, Key: key, Body: data, Metadata: metadata }));
  } else if (cfg.type === 'azure_blob') {
    await azure(cfg).getBlockBlobClient(key).uploadData(data, { metadata });
  } else {
    await gcs(cfg).file(key).save(data, { resumable: false, metadata: { metadata } });
  }
  return metadata;
}

async function mkbucket(cfg) {
  if (cfg.type === 'azure_blob') {
    await azure(cfg).createIfNotExists();
  } else if (cfg.type === 's3' || cfg.type === 'r2') {
    const { CreateBucketCommand } = need('@aws-sdk/client-s3');
    try {
      await s3(cfg).send(new CreateBucketCommand({ Bucket: cfg.bucket }));
    } catch (e) {
      if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e;
    }
  }
  return { ok: true };
}

async function list(cfg, prefix) {
  if (cfg.type === 's3' || cfg.type === 'r2') {
    const { ListObjectsV2Command } = need('@aws-sdk/client-s3');
    const out = await s3(cfg).send(new ListObjectsV2Command({ Bucket: cfg.bucket, Prefix: prefix }));
    return (out.Contents || []).map((o) => o.Key).sort();
  }
  if (cfg.type === 'azure_blob') {
    const keys = [];
    for await (const b of azure(cfg).listBlobsFlat({ prefix })) keys.push(b.name);
    return keys.sort();
  }
  const [files] = await gcs(cfg).getFiles({ prefix });
  return files.map((f) => f.name).sort();
}

async function main() {
  const [cfgPath, op, ...args] = process.argv.slice(2);
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  const ops = { get, put, mkbucket, list };
  if (!ops[op]) throw new Error('unknown operation ' + op);
  console.log(JSON.stringify(await ops[op](cfg, ...args)));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
