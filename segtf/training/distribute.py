"""Devices and strategies: the GPUs or CPU devices a run trains on, MirroredStrategy over them, and the cluster of
MultiWorkerMirroredStrategy (from TF_CONFIG or Slurm) with its chief, the one worker that writes the run's files."""

import hashlib
import os
from typing import Optional

from segtf.errors import UserError

import numpy as np
import tensorflow as tf

Resolver = tf.distribute.cluster_resolver.ClusterResolver


def cluster_resolver(cluster: str) -> Optional[Resolver]:
    """The machines of a multi-machine run, from TF_CONFIG or from Slurm; None for one machine."""
    if cluster == "slurm":
        if "SLURM_PROCID" not in os.environ:
            raise UserError("--cluster slurm: SLURM_PROCID is not set; start train.py with srun inside a Slurm job")
        # --device chooses each task's GPUs; the resolver's GPU counts only lay out one port per task on a node
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            gpus_per_node=1024, gpus_per_task=1, auto_set_gpu=False
        )
    else:
        try:
            resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
            spec = resolver.cluster_spec().as_dict()
        except ValueError as error:
            raise UserError(f"TF_CONFIG is not a valid cluster description: {error}") from error
        if sum(len(tasks) for tasks in spec.values()) <= 1:
            return None
    spec = resolver.cluster_spec().as_dict()
    if set(spec) - {"chief", "worker"} or resolver.task_type not in spec:
        raise UserError(
            f"the cluster must list chief and worker tasks only, and this task ({resolver.task_type}) among them: "
            f"{sorted(spec)}"
        )
    return resolver


def is_chief(resolver: Optional[Resolver]) -> bool:
    """The task that writes the run's files: the chief, or worker 0 in a cluster without one."""
    if resolver is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_id == 0)


def devices_of(device: Optional[list]) -> list:
    """--device as given, else every visible GPU's number, else ["cpu"]."""
    return device or list(range(len(tf.config.list_physical_devices("GPU")))) or ["cpu"]


def choose_devices(device: Optional[list], cpu_devices: int) -> bool:
    """Make exactly the chosen GPUs visible (or none); True when training on GPUs. Only configures
    devices: MultiWorkerMirroredStrategy must come before TensorFlow starts using them."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # number GPUs as nvidia-smi does, not fastest first
    gpus = tf.config.list_physical_devices("GPU")
    device = devices_of(device)
    if device == ["cpu"]:
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        if cpu_devices > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
        return False
    for index in device:
        if index >= len(gpus):
            there = f"GPUs 0 to {len(gpus) - 1}" if gpus else "no GPU (train on the CPU with --device cpu)"
            raise UserError(f"--device {index}: no such GPU; this machine has {there}")
    chosen = [gpus[i] for i in device]
    tf.config.set_visible_devices(chosen, "GPU")
    for gpu in chosen:
        tf.config.experimental.set_memory_growth(gpu, True)
    return True


def make_strategy(
    device: Optional[list],
    cpu_devices: int,
    resolver: Optional[Resolver] = None,
) -> tf.distribute.Strategy:
    """A strategy over the chosen devices: MultiWorkerMirroredStrategy in a cluster (it waits there until
    every worker has started), MirroredStrategy over several devices of one machine."""
    on_gpus = choose_devices(device, cpu_devices)
    if resolver is not None:
        if cpu_devices > 1:
            raise UserError("--cpu_devices above 1 works on one machine only, not in a cluster")
        collectives = tf.distribute.experimental.CommunicationImplementation
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=collectives.NCCL if on_gpus else collectives.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    names = [d.name for d in tf.config.list_logical_devices("GPU" if on_gpus else "CPU")]
    if len(names) == 1:  # the default strategy, on the one device left visible; BackupAndRestore needs it
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(names)


def shared_seed(strategy: tf.distribute.Strategy, seed: int) -> int:
    """One seed for all the workers of a cluster: the sum of the seeds they drew."""

    @tf.function  # run eagerly, a collective warns of its overhead
    def add_up() -> tf.Tensor:
        drawn = strategy.run(lambda: tf.constant(float(seed), tf.float64))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, drawn, axis=None)

    return int(add_up().numpy()) % 2**31


def shared_first(strategy: tf.distribute.Strategy, index: int, count: int) -> int:
    """The lowest of the indices (below count) that the workers of a cluster chose."""

    @tf.function
    def add_up() -> tf.Tensor:
        chosen = strategy.run(lambda: tf.one_hot(index, count, dtype=tf.float32))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, chosen, axis=None)

    return int(tf.argmax(add_up() > 0).numpy())


def cluster_line(strategy: tf.distribute.Strategy, chief: bool) -> str:
    """'2 workers x 4 devices = 8 replicas; this is worker 1, the chief is worker 0', or '' on one machine."""
    resolver = strategy.cluster_resolver
    if resolver is None:
        return ""
    spec = resolver.cluster_spec().as_dict()
    workers = sum(len(tasks) for tasks in spec.values())
    replicas = strategy.num_replicas_in_sync
    the_chief = "chief 0" if "chief" in spec else "worker 0"
    this = f"{resolver.task_type} {resolver.task_id}"
    return f"cluster of {workers} workers x {replicas // workers} device(s) = {replicas} replicas; this is {this}" + (
        ", the chief: it writes the run's files" if chief else f"; {the_chief} is the chief and writes the files"
    )


def weights_checksum(model: tf.keras.Model) -> str:
    """A digest of the weights: the same on every worker of a cluster that trained in step."""
    digest = hashlib.sha256()
    for array in model.get_weights():  # on every worker: reading the BatchNorm statistics is collective
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
