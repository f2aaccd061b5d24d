// SPDX-License-Identifier: Apache-2.0
// A gRPC server over cleartext HTTP/2 (node:http2) that answers every call with one
// fault, so that the tests can show how a client reports it: the harness's modal
// provider (test_grpc_faults.py) and, as the check that this is a gRPC server at all,
// the official `modal` SDK (grpc_faults_sdk.mjs), which accepts its answers.
//
// node grpc_faults.mjs MODE; prints {"port": N} once it listens.  MODE:
//   status    trailers-only answer: grpc-status 5 with a percent-encoded message
//   deadline  headers, then trailers with grpc-status 4 (DEADLINE_EXCEEDED)
//   short     a message whose prefix promises 64 bytes, 10 given, then status 0
//   reset     the same 10 bytes, then RST_STREAM(INTERNAL_ERROR): a stream cut mid-message
//   nostatus  one whole (empty) message, then the stream ends without trailers
//   hang      nothing at all: the client's own deadline must end the call
import http2 from 'node:http2';

const mode = process.argv[2];
const modes = ['status', 'deadline', 'short', 'reset', 'nostatus', 'hang'];
if (!modes.includes(mode)) {
  console.error(`mode must be one of ${modes.join(', ')}`);
  process.exit(2);
}
const GRPC = { ':status': 200, 'content-type': 'application/grpc' };
const calls = [];

const server = http2.createServer();
server.on('stream', (stream, headers) => {
  calls.push(headers[':path']);
  stream.on('error', () => {});
  stream.resume(); // the request's message is not looked at
  stream.on('end', () => {
    if (stream.destroyed) return;
    switch (mode) {
      case 'status':
        stream.respond({ ...GRPC, 'grpc-status': '5',
                         'grpc-message': encodeURIComponent('no app "airlock" here') },
                       { endStream: true });
        break;
      case 'deadline':
        stream.respond(GRPC, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '4',
          'grpc-message': encodeURIComponent('deadline passed after 1 s') }));
        stream.end();
        break;
      case 'short':
        stream.respond(GRPC, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.concat([Buffer.from([0, 0, 0, 0, 64]), Buffer.alloc(10)]));
        break;
      case 'reset':
        // Trailers awaited, so that the stream is not ended before the reset.
        stream.respond(GRPC, { waitForTrailers: true });
        stream.write(Buffer.concat([Buffer.from([0, 0, 0, 0, 64]), Buffer.alloc(10)]), () =>
          setTimeout(() => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR), 50));
        break;
      case 'nostatus':
        stream.respond(GRPC);
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
        break;
      case 'hang':
        break;
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on('SIGTERM', () => {
  console.error(`calls: ${JSON.stringify(calls)}`);
  process.exit(0);
});
