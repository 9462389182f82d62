"""A Kubeflow Pipelines (v2) pipeline that stages a dataset onto a GPU node, trains, and releases.

    python examples/kubeflow/stage_train_release.py stage_train_release.yaml   # compile
    # then upload the YAML in the KFP UI, or kfp.Client().create_run_from_pipeline_package(...)

The release step runs inside ``dsl.ExitHandler``: whether training succeeds, fails or is
cancelled, the staging is released (and should even that step not run, its pin lease ends it).
Every step gets the job token from the ``stagegate-job-token`` Secret, never as a parameter.

Data: the training step runs on the node the dataset was staged onto (``node_selector``) and
mounts ``datasets_pvc`` at /datasets: a ReadOnlyMany PersistentVolumeClaim the operator binds to
the workers' root. The KFP v2 SDK (with kfp-kubernetes 2.17) can mount a PVC but no hostPath and
no ``subPathExpr``, so this step cannot get a per-pod view as examples/k8s/training-job.yaml
does; where a pod must see only its own dataset, run that Job from the pipeline instead.
"""

import sys

from kfp import compiler, dsl, kubernetes

IMAGE = "registry.example.internal/stagegate:0.1.0"
API = "http://stagegate-api.stagegate.svc.cluster.local:8080"
TOKEN_SECRET = "stagegate-job-token"  # noqa: S105  # the Secret's name, not a token


@dsl.container_component
def stage(source: str, node: str, job: str, staging_id: dsl.OutputPath(str), dataset: dsl.OutputPath(str)):  # type: ignore[valid-type]
    """Stage ``source`` onto ``node`` and wait: exit 0 ready, 3 denied, 1 failed (the pipeline
    stops before training). Outputs the staging's id and the dataset's path on the node."""
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["/bin/sh", "-c"],
        args=[
            'stagegate stage "$0" --node "$1" --job "$2" --pin-ttl 2d --wait --json > /tmp/staging.json'
            ' && python3 -c \'import json, sys; s = json.load(open("/tmp/staging.json"));'
            ' open(sys.argv[1], "w").write(s["id"]);'
            ' open(sys.argv[2], "w").write(s["nodes"][0]["path"])\' "$3" "$4"',
            source,
            node,
            job,
            staging_id,
            dataset,
        ],
    )


@dsl.container_component
def train(dataset: str, epochs: int):
    """Train on the staged dataset, read in place under /datasets."""
    return dsl.ContainerSpec(
        image="nvcr.io/nvidia/pytorch:24.10-py3",
        command=["python3", "train.py"],
        args=["--data", dataset, "--epochs", epochs],
    )


@dsl.container_component
def release(job: str):
    """Release every staging this run made (those of job reference ``job``): their nodes may
    evict the data, and GB-hours stop. An exit task may take no other task's output, so it
    finds them by the run's job reference rather than by the stage step's output."""
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["/bin/sh", "-c"],
        args=[
            "stagegate list --json --limit 1000 > /tmp/stagings.json && python3 -c '"
            "import json, subprocess, sys\n"
            'held = [s["id"] for s in json.load(open("/tmp/stagings.json"))["stagings"]'
            ' if s["job"] == sys.argv[1] and s["state"] not in ("released", "failed", "denied")]\n'
            "for staging in held:\n"
            '    subprocess.run(["stagegate", "release", staging], check=True)\n'
            'print("stagegate: released", len(held), "staging(s) of", sys.argv[1])\' "$0"',
            job,
        ],
    )


def _with_token(task: dsl.PipelineTask) -> dsl.PipelineTask:
    task.set_env_variable("STAGEGATE_URL", API)
    kubernetes.use_secret_as_env(task, TOKEN_SECRET, {"token": "STAGEGATE_TOKEN"})
    return task


@dsl.pipeline(name="stage-train-release", description="Stage a dataset with stagegate, train, release it.")
def stage_train_release(
    source: str = "s3://datasets/imagenet",
    node: str = "gpu-01",
    node_selector: dict = {"kubernetes.io/hostname": "gpu-01"},  # noqa: B006  # a KFP parameter default
    datasets_pvc: str = "stagegate-datasets",
    epochs: int = 10,
) -> None:
    done = _with_token(release(job=dsl.PIPELINE_JOB_NAME_PLACEHOLDER))
    done.set_caching_options(False)  # a release must run every time
    with dsl.ExitHandler(done):  # runs `done` however the steps inside end
        staged = _with_token(stage(source=source, node=node, job=dsl.PIPELINE_JOB_NAME_PLACEHOLDER))
        staged.set_caching_options(False)  # a cached "ready" from another run holds no pin
        trained = train(dataset=staged.outputs["dataset"], epochs=epochs)
        kubernetes.add_node_selector_json(trained, node_selector)
        kubernetes.mount_pvc(trained, pvc_name=datasets_pvc, mount_path="/datasets")
        trained.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)


def compile_to(path: str) -> None:
    compiler.Compiler().compile(stage_train_release, path)


if __name__ == "__main__":
    compile_to(sys.argv[1] if len(sys.argv) > 1 else "stage_train_release.yaml")
