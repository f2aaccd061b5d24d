/* SPDX-License-Identifier: Apache-2.0 */
/* airlock CLI: the help texts (also the source of the man pages and completion). */
#include "cli.h"

/* ---- usage ---- */

const char usage_main[] =
    "Usage: airlock [--socket PATH] VERB [OPTIONS] [ARGS]\n"
    "\n"
    "The command-line client of airlockd.\n"
    "\n"
    "Verbs:\n"
    "  run      create a sandbox, run a command in it, destroy it\n"
    "  create   create a sandbox and print its id\n"
    "  exec     run a command in a sandbox\n"
    "  ls       list sandboxes\n"
    "  inspect  show a sandbox's effective isolation as JSON\n"
    "  stats    show the CPU, memory, processes and disk sandboxes use\n"
    "  top      show the processes of a sandbox\n"
    "  events   show what a sandbox was denied (seccomp) and its limit hits\n"
    "  rm       destroy sandboxes\n"
    "  prune    destroy stopped and expired sandboxes, or those a filter selects\n"
    "  write    write stdin to a file in a sandbox\n"
    "  read     copy a file of a sandbox to stdout\n"
    "  cp       copy files and directories between the host and a sandbox\n"
    "  info     show airlockd's version and capabilities\n"
    "  persist  write a sandbox's workspace to stdout as a tar\n"
    "  hydrate  replace a sandbox's workspace with the tar on stdin\n"
    "  snapshot snapshot a sandbox (it keeps running); print the snapshot id\n"
    "  restore  create a sandbox from a snapshot; print its id\n"
    "  snapshots    list snapshots\n"
    "  snapshot-rm  delete snapshots\n"
    "  image    import, list and remove images (docker save, OCI layouts)\n"
    "  snapshot-export  write a snapshot to stdout as one stream\n"
    "  snapshot-import  import a snapshot stream from stdin; print its id\n"
    "\n"
    "Global options:\n"
    "  -s, --socket PATH  airlockd's socket (default: $AIRLOCK_SOCKET or " DEFAULT_SOCKET ")\n"
    "  -h, --help         show this help; 'airlock VERB --help' for a verb\n";

#define CREATE_OPTIONS_HELP                                                                        \
	"  -m, --memory SIZE    memory limit (bytes, or 64M, 1G, ...)\n"                           \
	"      --pids N         maximum number of processes\n"                                     \
	"      --cpus N         CPU limit (e.g. 1.5)\n"                                            \
	"      --disk SIZE      cap on the writable layer and workspace (default 4G)\n"            \
	"      --rootfs DIR     base root filesystem\n"                                            \
	"      --image NAME     an imported image (its layers, Env, WorkingDir, User)\n"           \
	"      --name NAME      sandbox name (and hostname)\n"                                     \
	"      --manifest FILE  workspace manifest (JSON)\n"                                       \
	"      --network none   loopback only (the default)\n"                                     \
	"      --allow CIDR[:PORTS]  let the sandbox reach this IPv4 range (ports: P,\n"           \
	"                       P-Q, comma-separated; TCP and UDP); repeatable\n"                  \
	"  -p, --publish [HOSTADDR:]HOSTPORT:PORT[/udp]  serve the sandbox's PORT on the\n"        \
	"                       host (HOSTADDR 127.0.0.1 unless given; TCP unless /udp);\n"        \
	"                       repeatable\n"

/* The options of a command's run, in run and exec. */
#define EXEC_OPTIONS_HELP                                                                          \
	"  -e, --env K=V        environment variable (repeatable)\n"                               \
	"      --env-file FILE  environment variables, K=V per line (# comments)\n"                \
	"  -w, --cwd DIR        working directory (default /workspace)\n"                          \
	"  -u, --user USER      UID[:GID], or (exec) a name of the sandbox's /etc/passwd\n"        \
	"  -i, --interactive    stream stdin to CMD (over one connection)\n"                       \
	"  -t, --tty            run CMD on a terminal of the sandbox; with -i, this\n"             \
	"                       terminal is in raw mode (Ctrl-C goes to CMD)\n"                    \
	"      --timeout SECS   kill CMD after this long (exit status 124)\n"

const char usage_run[] =
    "Usage: airlock run [OPTIONS] [--] CMD [ARG...]\n"
    "\n"
    "Create a sandbox, run CMD in it with stdio passed through, destroy the\n"
    "sandbox and exit with CMD's status.  With --image, the image's Entrypoint\n"
    "comes before CMD, and without CMD its Cmd is run.\n"
    "\n" CREATE_OPTIONS_HELP EXEC_OPTIONS_HELP "\n"
    "stdin that is a terminal needs -i or -it (or a redirection, e.g. </dev/null).\n";

const char usage_create[] =
    "Usage: airlock create [OPTIONS]\n"
    "\n"
    "Create a sandbox and print its id.\n"
    "\n" CREATE_OPTIONS_HELP "  -e, --env K=V        default environment of every exec\n"
    "      --ttl SECS       destroy it this long after its creation\n"
    "      --idle-timeout SECS  destroy it after this long without an exec or file access\n"
    "      --label K=V      a label of the client's (repeatable; see ls --filter)\n"
    "      --env-file FILE  default environment, K=V per line\n"
    "      --json           print {\"id\": ...}\n";

const char usage_exec[] =
    "Usage: airlock exec [OPTIONS] ID [OPTIONS] [--] CMD [ARG...]\n"
    "\n"
    "Run CMD in sandbox ID with stdio passed through; exit with its status.\n"
    "ID may be a name or a unique prefix of an id (as everywhere an ID is taken).\n"
    "\n"
    "  -d, --detach         start CMD and return; print its process id (its output\n"
    "                       is dropped)\n" EXEC_OPTIONS_HELP "\n"
    "stdin that is a terminal needs -i or -it (or a redirection, e.g. </dev/null):\n"
    "  airlock exec -it ID -- bash\n";

const char usage_ls[] =
    "Usage: airlock ls [-q] [--json|--format json] [--filter label=K=V|state=S]...\n"
    "\n"
    "List sandboxes.\n"
    "\n"
    "  -q, --quiet          print only the ids\n"
    "      --json           print airlockd's JSON answer (also --format json)\n"
    "  -f, --filter F       only sandboxes with label K=V, or in a state (repeatable:\n"
    "                       all must match)\n";

const char usage_prune[] =
    "Usage: airlock prune [--filter label=K=V|state=running|stopped]...\n"
    "\n"
    "Destroy the sandboxes that are stopped (their PID 1 is gone) or whose ttl\n"
    "or idle timeout has passed; with --filter, every sandbox that matches\n"
    "(running ones too).  Prints the ids removed.\n"
    "\n"
    "  -f, --filter F       label=K=V or state=running|stopped (repeatable)\n";

const char usage_inspect[] = "Usage: airlock inspect ID\n"
                             "\n"
                             "Show a sandbox, including its effective isolation, as JSON.\n";

const char usage_events[] =
    "Usage: airlock events [--json] [-f|--follow] [ID...]\n"
    "\n"
    "Show the event log of sandbox ID: every syscall its seccomp profile denied\n"
    "(syscall, pid inside the sandbox, time, count) and every OOM kill or pids\n"
    "limit hit.  Without ID, those of every sandbox (with a SANDBOX column).\n"
    "\n"
    "  -f, --follow  show events as they come, of every sandbox or of the IDs given,\n"
    "                until interrupted (only the new ones)\n"
    "      --json    print airlockd's JSON answer (with --follow: one object a line)\n";

const char usage_top[] =
    "Usage: airlock top [--json] ID\n"
    "\n"
    "Show the processes of sandbox ID as the host's /proc shows them, with the pids\n"
    "and uids the sandbox sees: PID, PPID, UID, state, resident memory, CPU time\n"
    "and command line.\n"
    "\n"
    "      --json   print airlockd's JSON answer\n";

const char usage_rm[] = "Usage: airlock rm [--json] ID [ID...]\n"
                        "\n"
                        "Destroy sandboxes: their processes, cgroups, layers and state.\n"
                        "\n"
                        "      --json   print {\"removed\": [ids]}\n";

const char usage_write[] = "Usage: airlock write ID PATH\n"
                           "\n"
                           "Write stdin to PATH in sandbox ID (parent directories are created;\n"
                           "relative paths are relative to /workspace).\n";

const char usage_cp[] =
    "Usage: airlock cp [--json] SRC DEST\n"
    "\n"
    "Copy a file or a directory (recursively) between the host and a sandbox, either\n"
    "way: one of SRC and DEST is ID:PATH (ID a name or unique id prefix; a relative\n"
    "PATH is relative to /workspace).  Into DEST when it is an existing directory,\n"
    "else as DEST.  Regular files (with their permission bits) and directories are\n"
    "copied; symlinks and special files are reported and left out.\n"
    "\n"
    "      --json   print {\"sandbox\", \"files\", \"skipped\"}\n"
    "\n"
    "  airlock cp ./src box:/workspace/src\n"
    "  airlock cp box:out/report.txt .\n";

const char usage_read[] = "Usage: airlock read ID PATH\n"
                          "\n"
                          "Copy PATH of sandbox ID to stdout.\n";

const char usage_info[] = "Usage: airlock info\n"
                          "\n"
                          "Show airlockd's version, cgroup mode and capabilities.\n";

const char usage_persist[] =
    "Usage: airlock persist ID > workspace.tar\n"
    "\n"
    "Write the workspace of sandbox ID to stdout as a tar (member paths\n"
    "relative to the workspace root; ephemeral manifest entries left out).\n";

const char usage_hydrate[] =
    "Usage: airlock hydrate [OPTIONS] ID < workspace.tar\n"
    "\n"
    "Replace the contents of sandbox ID's workspace with the tar read from stdin.\n"
    "A refused archive (unsafe members, over a limit) changes nothing.\n"
    "\n"
    "      --max-input-bytes N      (default 1 GiB)\n"
    "      --max-extracted-bytes N  (default 4 GiB)\n"
    "      --max-members N          (default 100000)\n";

const char usage_snapshot[] =
    "Usage: airlock snapshot [--no-processes] ID\n"
    "\n"
    "Snapshot sandbox ID and print the snapshot id; the sandbox keeps running.\n"
    "\n"
    "      --no-processes  workspace and writable layer only, no CRIU checkpoint\n";

const char usage_restore[] = "Usage: airlock restore [--name NAME] SNAPSHOT_ID\n"
                             "\n"
                             "Create a sandbox from a snapshot and print its id.\n";

const char usage_snapshots[] = "Usage: airlock snapshots [--json]\n"
                               "\n"
                               "List the snapshots in airlockd's store.\n";

const char usage_image[] =
    "Usage: airlock image import [--json] NAME [ARCHIVE | DIR]\n"
    "       airlock image ls [--json]\n"
    "       airlock image rm [--json] NAME [NAME...]\n"
    "\n"
    "import  import a `docker save` archive or an OCI image layout (a tar, e.g.\n"
    "        from `skopeo copy ... oci-archive:`, or a directory) as NAME; read\n"
    "        from stdin without ARCHIVE.  gzip and zstd tars are accepted.\n"
    "ls      list images\n"
    "rm      remove images (refused while a sandbox uses one); layers no other\n"
    "        image has are deleted\n";

const char usage_snapshot_rm[] = "Usage: airlock snapshot-rm ID [ID...]\n"
                                 "\n"
                                 "Delete snapshots (and the chunks only they used).\n";

const char usage_snapshot_export[] =
    "Usage: airlock snapshot-export ID > FILE\n"
    "\n"
    "Write snapshot ID to stdout as one stream (a tar: snapshot.json and every part),\n"
    "for snapshot-import on another airlockd.\n";

const char usage_snapshot_import[] =
    "Usage: airlock snapshot-import < FILE\n"
    "\n"
    "Import a stream snapshot-export wrote, every part verified before it is listed;\n"
    "print the new snapshot's id.\n";
const char usage_stats[] =
    "Usage: airlock stats [--json] [ID...]\n"
    "\n"
    "Show what sandboxes use (all of them when no ID is given): CPU (share of one\n"
    "CPU over a 1 s sample, and time used), memory, processes and disk against\n"
    "their limits, as the kernel reports them.\n"
    "\n"
    "      --json   one JSON object: {\"sandboxes\": [{id, name, cpu_percent,\n"
    "               cpu_seconds, memory_bytes, memory_limit_bytes, pids, pids_limit,\n"
    "               disk_bytes, disk_limit_bytes}]}\n";
