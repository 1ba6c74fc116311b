"""A Spark standalone cluster on this machine: one master and N one-core workers,
started with the ``bin/spark-class`` that ships in the pyspark package (which has no
``start-master.sh``/``start-worker.sh``), for trying the examples on a real cluster.

    python examples/spark/local_cluster.py --workers 2      # prints the master URL, then
                                                            # runs until Ctrl-C
    python examples/spark/churn_windows.py out/churn --master spark://127.0.0.1:PORT

From Python (every process it started is stopped at the end, also on an error)::

    from local_cluster import standalone_cluster
    with standalone_cluster(workers=2, folder="/tmp/cluster") as master:
        spark = SparkSession.builder.master(master).getOrCreate()

Every process listens on 127.0.0.1 only. Logs and the workers' scratch space go to the
given folder.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home():
    """The Spark distribution inside the installed pyspark package."""
    import pyspark
    return os.path.dirname(pyspark.__file__)


class ClusterNotReady(RuntimeError):
    """The master or its workers did not come up in time."""


@contextmanager
def standalone_cluster(workers=2, folder=None, cores=1, memory="1g", timeout=90,
                       pin=False):
    """Starts a master and ``workers`` workers (``cores`` cores and ``memory`` each),
    waits until every worker registered, yields the master URL and stops every process
    it started (by PID and process group: the scripts exec java) at the end. Raises
    ClusterNotReady when the workers are not all registered within ``timeout`` seconds.

    ``pin``: each worker, and so its executor JVM and Python workers, runs on CPUs of its
    own (``cores`` of this machine's CPUs each, in order; with ``taskset``), as on a cluster of machines
    with ``cores`` cores each. Spark's ``--cores`` only counts task slots: without
    pinning, a one-core worker's executor threads and Python workers use more than one
    CPU when the machine has them. The master and the driver are not pinned."""
    folder = folder or tempfile.mkdtemp(prefix="dlprep-spark-cluster-")
    os.makedirs(folder, exist_ok=True)
    port, ui = _free_port(), _free_port()
    home = spark_home()
    env = dict(os.environ, SPARK_HOME=home, SPARK_LOCAL_IP="127.0.0.1",
               SPARK_WORKER_DIR=os.path.join(folder, "work"))
    spark_class = os.path.join(home, "bin", "spark-class")
    procs, logs = [], []

    cpus = sorted(os.sched_getaffinity(0))
    if pin and workers * cores > len(cpus):
        raise ValueError(f"pin: {workers} workers with {cores} core(s) each need "
                         f"{workers * cores} CPUs; this process may use {len(cpus)}")

    def start(args, cpu_set=None):
        log = open(os.path.join(folder, f"proc{len(procs)}.log"), "wb")
        logs.append(log)
        if cpu_set is not None:  # taskset (util-linux): no Python code in the child
            args = ["taskset", "-c", ",".join(map(str, sorted(cpu_set)))] + args
        procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))

    try:
        start([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
               "--port", str(port), "--webui-port", str(ui)])
        for i in range(workers):
            start([spark_class, "org.apache.spark.deploy.worker.Worker", "--cores",
                   str(cores), "--memory", memory, "--webui-port", "0",
                   f"spark://127.0.0.1:{port}"],
                  set(cpus[i * cores:(i + 1) * cores]) if pin else None)
        deadline = time.time() + timeout
        alive = 0
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json", timeout=2) as r:
                    alive = sum(w["state"] == "ALIVE" for w in json.load(r)["workers"])
            except OSError:
                pass
            if alive == workers:
                break
            time.sleep(1)
        if alive != workers:
            raise ClusterNotReady(f"{alive} of {workers} workers registered with the master "
                                  f"in {timeout} s (logs: {folder})")
        yield f"spark://127.0.0.1:{port}"
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for log in logs:
            log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cores", type=int, default=1, help="cores per worker")
    ap.add_argument("--memory", default="1g", help="memory per worker (Spark's notation)")
    ap.add_argument("--folder", help="logs and scratch space (default: a temporary folder)")
    ap.add_argument("--pin", action="store_true",
                    help="run each worker (its executor and Python workers) on CPUs of its "
                         "own, as on a cluster of machines with --cores cores each")
    args = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        with standalone_cluster(args.workers, args.folder, args.cores, args.memory,
                                pin=args.pin) as url:
            print(f"master {url} with {args.workers} workers; Ctrl-C stops them", flush=True)
            while not stop:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except (ClusterNotReady, ValueError) as e:
        sys.exit(f"local_cluster.py: {e}")


if __name__ == "__main__":
    main()
