"""The Pod Security Standards' "restricted" profile (Kubernetes docs, "Pod Security
Standards", policy version 1.30), as checks on a pod template: everything the "baseline"
profile forbids plus the restricted rules. Written from the published table of fields and
allowed values; each message names the rule it breaks."""

from __future__ import annotations

from typing import Any

_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key, [])
    ]  # fmt: skip


def _seccomp_type(ctx: dict[str, Any]) -> str | None:
    profile = ctx.get("seccompProfile")
    return None if profile is None else str(profile.get("type"))


def restricted_violations(template: dict[str, Any]) -> list[str]:
    """Every rule of the restricted profile that ``template`` (a pod template: metadata and
    spec) breaks; empty when it complies."""
    spec = template["spec"]
    notes = template.get("metadata", {}).get("annotations", {}) or {}
    pod_ctx = spec.get("securityContext", {}) or {}
    bad: list[str] = []
    # -- baseline ---------------------------------------------------------------------
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            bad.append(f"host namespaces: {key}")
    if (pod_ctx.get("windowsOptions") or {}).get("hostProcess"):
        bad.append("HostProcess: pod")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            bad.append(f"HostPath volumes: {volume['name']}")
        if not kinds <= _VOLUME_TYPES:
            bad.append(f"volume types: {volume['name']} is {sorted(kinds)}")
    for name in pod_ctx.get("sysctls", []) or []:
        if name["name"] not in _SAFE_SYSCTLS:
            bad.append(f"sysctls: {name['name']}")
    for key, value in notes.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            bad.append(f"AppArmor: {key}={value}")
    pod_seccomp = _seccomp_type(pod_ctx)
    pod_non_root = pod_ctx.get("runAsNonRoot") is True
    contexts = [("pod", pod_ctx)]
    for c in _containers(spec):
        name = c["name"]
        ctx = c.get("securityContext", {}) or {}
        contexts.append((name, ctx))
        if ctx.get("privileged"):
            bad.append(f"privileged containers: {name}")
        if (ctx.get("windowsOptions") or {}).get("hostProcess"):
            bad.append(f"HostProcess: {name}")
        for port in c.get("ports", []):
            if port.get("hostPort", 0):
                bad.append(f"host ports: {name}")
        if ctx.get("procMount", "Default") != "Default":
            bad.append(f"/proc mount type: {name}")
        # -- restricted -------------------------------------------------------------------
        if ctx.get("allowPrivilegeEscalation") is not False:
            bad.append(f"privilege escalation: {name} does not set allowPrivilegeEscalation false")
        if ctx.get("runAsNonRoot") is False or not (pod_non_root or ctx.get("runAsNonRoot")):
            bad.append(f"running as non-root: {name}")
        container_seccomp = _seccomp_type(ctx)
        if container_seccomp is None and pod_seccomp is None:
            bad.append(f"seccomp: {name} has no profile (RuntimeDefault or Localhost)")
        caps = ctx.get("capabilities", {}) or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"capabilities: {name} does not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"capabilities: {name} adds {sorted(caps['add'])}")
    for where, ctx in contexts:
        if ctx.get("runAsUser") == 0:
            bad.append(f"running as non-root user: {where} runAsUser 0")
        seccomp = _seccomp_type(ctx)
        if seccomp is not None and seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"seccomp: {where} is {seccomp}")
        selinux = ctx.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in _SELINUX_TYPES or "user" in selinux or "role" in selinux:
            bad.append(f"SELinux: {where}")
        apparmor = (ctx.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            bad.append(f"AppArmor: {where} is {apparmor}")
    return bad
