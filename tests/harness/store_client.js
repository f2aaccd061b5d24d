// SPDX-License-Identifier: Apache-2.0
// The official storage clients, driven by tests/harness/test_stores.py to check
// what airlock-harness writes and to write what it must read:
//   node store_client.js CONFIG.json get KEY FILE      -> prints {"sha256": metadata, "size": n}
//   node store_client.js CONFIG.json put KEY FILE [SHA] -> metadata sha256 = SHA or the file's
//   node store_client.js CONFIG.json mkbucket
//   node store_client.js CONFIG.json list PREFIX       -> prints the keys as JSON
//   node store_client.js CONFIG.json dirs PREFIX       -> {"files": [...], "prefixes": [...]},
//                                                         one level below PREFIX (delimiter /)
//   node store_client.js CONFIG.json move FROM TO      -> a server-side copy, then delete
//   node store_client.js CONFIG.json setmeta KEY K V   -> custom metadata K = V (a patch)
//   node store_client.js CONFIG.json delete KEY
// CONFIG: {"type": "s3"|"r2"|"gcs"|"azure_blob", "endpoint", "bucket", "region",
//          "access_key_id", "secret_access_key", "account_name", "account_key",
//          "sas_token" (Azure, instead of account_key), "access_token" (GCS: sent as a
//          Bearer token, as the client does with any credentials)}
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
  if (cfg.sas_token) {
    const sas = cfg.sas_token.replace(/^\?/, '');
    return new BlobServiceClient(cfg.endpoint + '?' + sas).getContainerClient(cfg.bucket);
  }
  const cred = new StorageSharedKeyCredential(cfg.account_name, cfg.account_key);
  return new BlobServiceClient(cfg.endpoint, cred).getContainerClient(cfg.bucket);
}

function gcs(cfg) {
  const { Storage } = need('@google-cloud/storage');
  const opts = { apiEndpoint: cfg.endpoint, projectId: 'airlock-test' };
  if (cfg.access_token) {
    const { OAuth2Client } = need('google-auth-library');
    const auth = new OAuth2Client();
    auth.setCredentials({ access_token: cfg.access_token });
    Object.assign(opts, { authClient: auth, useAuthWithCustomEndpoint: true });
  }
  return new Storage(opts).bucket(cfg.bucket);
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

async function dirs(cfg, prefix) {
  if (cfg.type !== 'gcs') throw new Error('dirs: gcs only');
  const [files, , resp] = await gcs(cfg).getFiles({ prefix, delimiter: '/', autoPaginate: false });
  return { files: files.map((f) => f.name).sort(), prefixes: (resp.prefixes || []).sort() };
}

async function move(cfg, from, to) {
  if (cfg.type !== 'gcs') throw new Error('move: gcs only');
  await gcs(cfg).file(from).move(to);
  return { ok: true };
}

async function setmeta(cfg, key, k, v) {
  if (cfg.type !== 'gcs') throw new Error('setmeta: gcs only');
  const [meta] = await gcs(cfg).file(key).setMetadata({ metadata: { [k]: v } });
  return { metadata: meta.metadata };
}

async function del(cfg, key) {
  if (cfg.type === 'azure_blob') await azure(cfg).getBlobClient(key).delete();
  else if (cfg.type === 'gcs') await gcs(cfg).file(key).delete();
  else {
    const { DeleteObjectCommand } = need('@aws-sdk/client-s3');
    await s3(cfg).send(new DeleteObjectCommand({ Bucket: cfg.bucket, Key: key }));
  }
  return { ok: true };
}

async function main() {
  const [cfgPath, op, ...args] = process.argv.slice(2);
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  const ops = { get, put, mkbucket, list, dirs, move, setmeta, delete: del };
  if (!ops[op]) throw new Error('unknown operation ' + op);
  console.log(JSON.stringify(await ops[op](cfg, ...args)));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
