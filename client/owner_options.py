"""``stage --owner-pod/--owner-job/--owner-uid/--owner-from-env``: the Kubernetes object whose
end releases a service staging, as the command line or the downward API names it."""

from collections.abc import Callable
from typing import Any

import click

from stagegate.errors import InvalidInputError
from stagegate.owners import OwnerRef
from stagegate.settings import load_settings

OWNER_OPTIONS = ("owner_pod", "owner_job", "owner_uid", "owner_from_env")


def owner_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The four options, in the order ``--help`` shows them."""
    for option in reversed(
        [
            click.option(
                "--owner-pod",
                metavar="NAMESPACE/NAME",
                default=None,
                help="Service: release the staging once this pod is gone, ended or replaced (+ --owner-uid).",
            ),
            click.option(
                "--owner-job",
                metavar="NAMESPACE/NAME",
                default=None,
                help="Service: release the staging once this Job is gone or finished (with --owner-uid).",
            ),
            click.option(
                "--owner-uid",
                metavar="UID",
                default=None,
                help="The owner's metadata.uid: a pod recreated under the same name is not the owner.",
            ),
            click.option(
                "--owner-from-env",
                is_flag=True,
                help="Service: the owner is the pod this runs in, from the downward API's POD_NAMESPACE, "
                "POD_NAME and POD_UID.",
            ),
        ]
    ):
        command = option(command)
    return command


def chosen_owner(pod: str | None, job: str | None, uid: str | None, from_env: bool) -> OwnerRef | None:
    """The owner the options name, checked as Kubernetes checks names; a usage error for a mix
    that cannot mean one owner."""
    named = [
        flag
        for flag, given in (("--owner-pod", pod), ("--owner-job", job), ("--owner-from-env", from_env))
        if given
    ]
    if len(named) > 1:
        raise click.UsageError(f"{' and '.join(named)} each name the owner: give one")
    if not named:
        if uid is not None:
            raise click.UsageError("--owner-uid goes with --owner-pod or --owner-job")
        return None
    try:
        if from_env:
            if uid is not None:
                raise click.UsageError("--owner-from-env reads the uid from POD_UID: leave out --owner-uid")
            env = load_settings()
            missing = [
                name
                for name, value in (
                    ("POD_NAMESPACE", env.pod_namespace),
                    ("POD_NAME", env.pod_name),
                    ("POD_UID", env.pod_uid),
                )
                if not value
            ]
            if missing:
                raise click.UsageError(
                    f"--owner-from-env needs {', '.join(missing)} from the downward API (fieldRef "
                    "metadata.namespace, metadata.name, metadata.uid)"
                )
            return OwnerRef("Pod", str(env.pod_namespace), str(env.pod_name), str(env.pod_uid))
        if uid is None:
            raise click.UsageError(f"{named[0]} needs --owner-uid (the object's metadata.uid)")
        return OwnerRef.parse("Pod" if pod else "Job", str(pod or job), uid)
    except InvalidInputError as exc:
        raise click.UsageError(str(exc)) from None
