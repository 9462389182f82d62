"""examples/: the Kubeflow pipeline, compiled to its YAML and parsed; the training Job, parsed.
No cluster here: what is checked is what the files say."""

import importlib.util
from pathlib import Path
from typing import Any

import yaml

from unit.deploy.helpers import Invocation, stagegate_argv

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
TOKEN_SECRET = "stagegate-job-token"


def compiled_pipeline(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = importlib.util.spec_from_file_location(
        "stage_train_release", EXAMPLES / "kubeflow" / "stage_train_release.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "pipeline.yaml"
    module.compile_to(str(out))
    pipeline, platform = yaml.safe_load_all(out.read_text())
    return pipeline, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_the_pipeline_releases_in_an_exit_handler_whatever_training_does(tmp_path: Path) -> None:
    pipeline, _ = compiled_pipeline(tmp_path)
    root = pipeline["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "release"}
    release = root["release"]
    assert release["dependentTasks"] == ["exit-handler-1"]
    assert release["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED", "runs on failure too"
    assert release["inputs"]["parameters"]["job"]["runtimeValue"]["constant"] == "{{$.pipeline_job_name}}"
    inside = pipeline["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert set(inside) == {"stage", "train"}
    assert inside["train"]["dependentTasks"] == ["stage"]
    assert (
        inside["stage"]["inputs"]["parameters"]["job"]["runtimeValue"]["constant"]
        == "{{$.pipeline_job_name}}"
    )
    assert release["cachingOptions"] == {} and inside["stage"]["cachingOptions"] == {}, (
        "never a cached result"
    )


def test_the_steps_run_stagegate_with_the_token_from_a_secret_only(tmp_path: Path) -> None:
    pipeline, platform = compiled_pipeline(tmp_path)
    executors = pipeline["deploymentSpec"]["executors"]
    stage = executors["exec-stage"]["container"]
    argv = stagegate_argv(stage["command"], stage["args"][:1], "")
    assert argv is not None
    invocation = Invocation(argv)
    assert (
        invocation.subcommand == "stage"
        and "--wait" in invocation.flags
        and invocation.one("--pin-ttl") == "2d"
    )
    release = executors["exec-release"]["container"]["args"][0]
    assert release.startswith("stagegate list --json") and '"stagegate", "release", staging' in release
    for step in ("exec-stage", "exec-release"):
        (secret,) = platform[step]["secretAsEnv"]
        assert secret["secretName"] == TOKEN_SECRET
        assert secret["keyToEnv"] == [{"secretKey": "token", "envVar": "STAGEGATE_TOKEN"}]
    assert "secretAsEnv" not in platform["exec-train"], "training gets no stagegate token"
    defaults = pipeline["root"]["inputDefinitions"]["parameters"]
    assert not any("token" in name.lower() for name in defaults), "no token as a pipeline parameter"


def test_training_mounts_one_claim_and_runs_on_the_staged_node(tmp_path: Path) -> None:
    pipeline, platform = compiled_pipeline(tmp_path)
    train = platform["exec-train"]
    (claim,) = train["pvcMount"]
    assert claim["mountPath"] == "/datasets"
    assert claim["componentInputParameter"] == "pipelinechannel--datasets_pvc"
    assert set(train) <= {"pvcMount", "nodeSelector"}, "no other volume, secret or host path"
    assert (
        train["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"]
        == "pipelinechannel--node_selector"
    )
    assert pipeline["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]["accelerator"]


# --- the training Job


def job() -> dict[str, Any]:
    (document,) = yaml.safe_load_all((EXAMPLES / "k8s" / "training-job.yaml").read_text())
    return dict(document)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def test_the_job_owns_its_staging_by_its_own_name_and_uid() -> None:
    spec = job()["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    argv = stagegate_argv(init["command"], init["args"], init["image"])
    assert argv is not None
    stage = Invocation(argv)
    assert (
        stage.one("--owner-job") == "$(JOB_NAMESPACE)/$(JOB_NAME)"
        and stage.one("--owner-uid") == "$(JOB_UID)"
    )
    assert "--wait" in stage.flags
    env = _env(init)
    fields = {
        name: env[name]["valueFrom"]["fieldRef"]["fieldPath"]
        for name in ("JOB_NAMESPACE", "JOB_NAME", "JOB_UID")
    }
    assert fields == {
        "JOB_NAMESPACE": "metadata.namespace",
        "JOB_NAME": "metadata.labels['batch.kubernetes.io/job-name']",
        "JOB_UID": "metadata.labels['batch.kubernetes.io/controller-uid']",
    }
    assert "secretKeyRef" in env["STAGEGATE_TOKEN"]["valueFrom"]
    assert spec["restartPolicy"] == "Never"


def test_the_job_trains_on_its_own_view_read_only_and_releases_on_exit() -> None:
    spec = job()["spec"]["template"]["spec"]
    (train,) = spec["containers"]
    (view,) = [m for m in train["volumeMounts"] if m["mountPath"] == "/data"]
    assert view["readOnly"] is True and view["subPathExpr"] == "$(JOB_UID)"
    assert view["mountPropagation"] == "HostToContainer"
    assert "JOB_UID" in _env(train)
    host_paths = [v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v]
    assert host_paths == ["/nvme/stagegate/views"], "nothing of the node but the views"
    (script,) = train["args"]
    assert "trap '" in script and "' EXIT" in script and 'method="DELETE"' in script
    assert "exec python3" not in script, "the trap must run after training"
    assert all(m.get("readOnly") for m in train["volumeMounts"] if m["name"] in ("views", "handoff"))
