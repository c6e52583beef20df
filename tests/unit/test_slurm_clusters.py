"""Several Slurm clusters, each its own way in (`uws_hub.slurm.spec`, `uws_hub.slurm.clusters`):
the settings an operator writes and the errors that name what to fix, the job request as
slurmrestd's job properties, the operator's token, and each cluster's own monitor and metric
series. Against real Slurm (both ways, two clusters): tests/e2e/test_clusters.py."""

from __future__ import annotations

import asyncio
import copy
import time

import jwt
import pytest
from prometheus_client import REGISTRY

from uws_hub.config import UWS
from uws_hub.errors import ConfigError
from uws_hub.jobs.launch import LaunchPlan, rest_property
from uws_hub.slurm.clusters import Cluster, ClusterError, ClusterNotConfigured, cluster_of
from uws_hub.slurm.monitor import UNKNOWN, QueueUnknown, SlurmJob
from uws_hub.slurm.rest import JWTTokens, SlurmRest, SlurmRestError
from uws_hub.slurm.spec import DEFAULT, default_cluster, parse_clusters

REST = {"way": "rest", "url": "http://127.0.0.1:9", "jwt_key_file": "/k", "read_user": "reader"}


def test_no_clusters_configured_is_one_default_cluster_through_the_commands():
    specs = parse_clusters({})
    assert list(specs) == [DEFAULT] and specs[DEFAULT].way == "commands"
    assert default_cluster(specs) == DEFAULT
    # the only cluster of a hub is every Slurm resource's, whatever its name
    assert default_cluster(parse_clusters({"hpc": REST})) == "hpc"
    assert default_cluster(parse_clusters({"a": REST, "b": {"way": "commands"}})) == DEFAULT


@pytest.mark.parametrize(
    "specs, says",
    [
        ({"a": {"way": "ssh"}}, "'way' must be 'commands' or 'rest'"),
        ({"A b": {"way": "commands"}}, "must be lower-case letters"),
        ({"a": {"way": "commands", "url": "http://x:1"}}, "apply to way 'rest' only"),
        ({"a": {"way": "commands", "slurm_conf": "slurm.conf"}}, "must be an absolute path"),
        ({"a": {**REST, "url": "slurm:6820"}}, "must be slurmrestd's base URL"),
        ({"a": {**REST, "jwt_key_file": None}}, "set one of 'jwt_key_file'"),
        ({"a": {**REST, "token_source": "site.tokens:make"}}, "set one of 'jwt_key_file'"),
        ({"a": {**REST, "read_user": None}}, "'read_user' must name the ordinary account"),
        ({"a": {**REST, "read_user": "bad user"}}, "must be an account name"),
        ({"a": {**REST, "version": "0.0.38"}}, "must look like 'v0.0.38'"),
        ({"a": {**REST, "token_lifespan": 5}}, "'token_lifespan' must be whole seconds"),
        ({"a": {**REST, "poll_interval": 0}}, "'poll_interval' must be a positive"),
        ({"a": {**REST, "slurm_conf": "/etc/slurm/a.conf"}}, "applies to way 'commands'"),
        ({"a": {**REST, "passwd": "x"}}, "unknown keys ['passwd']"),
        ({"a": {**REST, "read_user": "root"}}, "'read_user' 'root' must be an ordinary account"),
        ({"a": {**REST, "read_user": "slurm"}}, "not one of refused_users ['slurm']"),
        ({"a": {**REST, "operator_user": "reader"}}, "not the operator_user"),
    ],
)
def test_a_cluster_setting_that_cannot_work_is_refused_naming_the_fix(specs, says):
    with pytest.raises(ConfigError, match=r".*") as e:
        parse_clusters(specs)
    assert says in str(e.value)


def config(resources: dict, clusters: dict) -> UWS:
    c = UWS()
    c.resources = resources
    c.slurm_clusters = clusters
    return c


def check(c: UWS) -> list[str]:
    """The job and cluster settings' checks; the warnings."""
    warnings: list[str] = []
    c._validate_jobs()
    c._validate_clusters(warnings)
    return warnings


def test_a_resource_must_name_a_configured_cluster():
    c = config(
        {"gpu": {"kind": "slurm", "cluster": "gpu-cluster"}},
        {"main": {"way": "commands"}, "other": REST},
    )
    with pytest.raises(ConfigError) as e:
        check(c)
    assert "cluster 'gpu-cluster' is not in c.UWS.slurm_clusters (['main', 'other'])" in str(
        e.value
    )
    # a local resource has no cluster
    with pytest.raises(ConfigError, match="is a Slurm setting; this resource is local"):
        check(config({"l": {"kind": "local", "cluster": "main"}}, {}))


def test_extra_directives_on_a_rest_cluster_must_be_job_properties():
    c = config(
        {"s": {"kind": "slurm", "cluster": "r", "extra_directives": ["--gpu-bind=closest"]}},
        {"r": REST},
    )
    with pytest.raises(ConfigError) as e:
        check(c)
    assert "'--gpu-bind=closest' has no slurmrestd job property" in str(e.value)
    # the same directive is fine where sbatch reads the script
    check(config({"s": {"kind": "slurm", "extra_directives": ["--gpu-bind=closest"]}}, {}))


def test_the_request_as_slurmrestd_job_properties():
    c = config(
        {
            "s": {
                "kind": "slurm",
                "cluster": "r",
                "account": "lab",
                "qos": "normal",
                "extra_directives": ["--constraint=avx2", "--mem-per-cpu=800M", "--exclusive"],
            }
        },
        {"r": REST},
    )
    check(c)
    res = c.resource_map["s"]
    plan = LaunchPlan(
        job_type="t",
        resource="s",
        kind="slurm",
        cpus=2,
        memory_mb=1024,
        time_limit_min=45,
        gpus=1,
        partition="gpu",
        gres="gpu:1",
    )
    assert plan.slurm_job_properties(res) == {
        "cpus_per_task": 2,
        "time_limit": 45,
        "memory_per_node": 1024,
        "partition": "gpu",
        "gres": "gpu:1",
        "account": "lab",
        "qos": "normal",
        "constraints": "avx2",
        "memory_per_cpu": 800,
        "exclusive": "true",
    }
    # and the same as #SBATCH lines for the commands
    assert "--cpus-per-task=2" in plan.slurm_directives(res)
    for bad, says in [("--nice=low", "whole number"), ("--licenses", "needs a value")]:
        with pytest.raises(ValueError, match=says):
            rest_property(bad)


def test_the_operator_token_is_minted_only_as_the_operator(tmp_path):
    key = tmp_path / "jwt_hs256.key"
    key.write_bytes(b"k" * 32)
    tokens = JWTTokens(str(key), operator="root")
    # root is the operator here (slurmrestd 22.05 runs its token as root): only as such
    claims = jwt.decode(tokens.token("root", operator=True), b"k" * 32, algorithms=["HS256"])
    assert claims["sun"] == "root"
    with pytest.raises(ValueError, match="no Slurm token is made for root"):
        tokens.token("root")  # a person's request never carries it
    with pytest.raises(ValueError, match="is not this cluster's operator_user"):
        tokens.token("alice", operator=True)
    ops = JWTTokens(str(key), operator="slurmops")
    with pytest.raises(ValueError, match="the cluster's operator"):
        ops.token("slurmops")


def test_a_cluster_without_an_operator_cannot_raise_a_limit_through_slurmrestd(tmp_path):
    key = tmp_path / "k"
    key.write_bytes(b"k" * 32)
    spec = parse_clusters({"r": {**REST, "jwt_key_file": str(key)}})["r"]
    cluster = Cluster(spec, interval=1, timeout=1, path="/usr/bin:/bin")
    with pytest.raises(ClusterError, match="has no operator_user"):
        asyncio.run(cluster.set_time_limit("42", 90))
    with pytest.raises(ClusterError, match="as its owner only"):
        asyncio.run(cluster.cancel(None, "42"))


def test_a_commands_cluster_runs_its_commands_with_its_own_configuration():
    spec = parse_clusters({"two": {"way": "commands", "slurm_conf": "/etc/slurm-two/slurm.conf"}})
    cluster = Cluster(spec["two"], interval=1, timeout=1, path="/usr/bin:/bin")
    assert cluster.env["SLURM_CONF"] == "/etc/slurm-two/slurm.conf"
    assert cluster.monitor.source.env["SLURM_CONF"] == "/etc/slurm-two/slurm.conf"
    assert cluster.job_env == {"SLURM_CONF": "/etc/slurm-two/slurm.conf"}


class FixedSource:
    way = "commands"

    def __init__(self, answer):
        self.answer = answer

    async def queue(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def look_up(self, job_id):
        return SlurmJob(job_id, "GONE")


def test_one_cluster_down_makes_only_its_own_jobs_unknown():
    specs = parse_clusters({"up": {"way": "commands"}, "down": {"way": "commands"}})
    up = Cluster(specs["up"], interval=0.01, timeout=1, path="/bin")
    down = Cluster(specs["down"], interval=0.01, timeout=1, path="/bin")
    up.monitor.source = FixedSource({"7": SlurmJob("7", "RUNNING", node="n1")})
    down.monitor.source = FixedSource(QueueUnknown("slurm_load_jobs error: Unable to contact"))

    async def both():
        return await up.monitor.status("7", max_age=0), await down.monitor.status("7", max_age=0)

    on_up, on_down = asyncio.run(both())
    assert on_up.running and on_down.state == UNKNOWN and on_down.live
    assert "Unable to contact" in on_down.reason
    gauge = REGISTRY.get_sample_value
    assert gauge("uws_slurm_queue_up", {"cluster": "up"}) == 1
    assert gauge("uws_slurm_queue_up", {"cluster": "down"}) == 0


def test_a_waiting_job_is_told_when_slurm_expects_to_start_it():
    from uws_hub.slurm.monitor import parse_start
    from uws_hub.spawners.slurm import UWSSlurmSpawner, utc_text_of

    soon = int(time.time()) + 600
    waiting = SlurmJob("7", "PENDING", reason="Resources", partition="batch", position=2)
    waiting.extra["start_estimate"] = soon
    at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(soon))
    assert UWSSlurmSpawner._queue_message(waiting) == (
        f"Waiting in the Slurm queue (Resources, position 2 in batch). "
        f"Slurm expects to start it by {at}."
    )
    assert utc_text_of(soon) == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(soon))
    # an estimate gone by (slurmrestd's start_time of a job not yet planned) is none
    waiting.extra["start_estimate"] = int(time.time()) - 60
    assert UWSSlurmSpawner._queue_message(waiting).endswith("position 2 in batch).")
    assert utc_text_of(time.time() - 60) is None
    # squeue's %S (the commands run with TZ=UTC, whatever this host's zone)
    assert parse_start(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(soon))) == soon
    assert parse_start("2026-12-06T14:32:00") == 1796567520
    assert parse_start("N/A") is None and parse_start("Unknown") is None


def test_warnings_for_a_key_it_cannot_read_plain_http_and_root_as_operator(tmp_path):
    key = tmp_path / "k"
    key.write_bytes(b"k" * 32)
    fine = {**REST, "jwt_key_file": str(key)}
    local = {"l": {"kind": "local"}}
    assert check(config(local, {"r": fine})) == []
    warnings = check(
        config(
            local,
            {
                "far": {**fine, "url": "http://slurm.example.org:6820"},
                "gone": {**REST, "jwt_key_file": str(tmp_path / "missing")},
                "rooted": {**fine, "operator_user": "root"},
            },
        )
    )
    assert any("plain HTTP to another host" in w and "'far'" in w for w in warnings), warnings
    assert any("cannot be read by this process" in w and "'gone'" in w for w in warnings)
    assert any("operator_user 'root'" in w and "AdminLevel=Operator" in w for w in warnings)
    assert len(warnings) == 3
    assert check(config(local, {"r": {**fine, "url": "https://slurm.example.org:6820"}})) == []


class AnyToken:
    """A site's token service that would mint anything it is asked for."""

    def __init__(self):
        self.asked: list[tuple[str, bool]] = []

    def token(self, username: str, operator: bool = False) -> str:
        self.asked.append((username, operator))
        return "t"


def test_no_request_is_made_as_a_privileged_account_whatever_mints_the_tokens():
    tokens = AnyToken()
    rest = SlurmRest("http://127.0.0.1:9", tokens, "reader", operator_user="ops", timeout=1)

    async def submit_as(user: str):
        return await rest.submit(user, "#!/bin/bash\n", {})

    for user, says in [
        ("root", "no request is made as root"),
        ("slurm", "no request is made as slurm"),
        ("ops", "the cluster's operator: its token raises limits only"),
    ]:
        with pytest.raises(SlurmRestError, match=says):
            asyncio.run(submit_as(user))
    with pytest.raises(SlurmRestError, match="is not this cluster's operator_user"):
        asyncio.run(rest.update("alice", "42", {"time_limit": 90}, operator=True))
    assert tokens.asked == []  # never even asked for


def test_a_rotated_key_is_used_from_the_next_token(tmp_path):
    key = tmp_path / "jwt_hs256.key"
    key.write_bytes(b"a" * 32)
    tokens = JWTTokens(str(key))
    first = tokens.token("alice")
    jwt.decode(first, b"a" * 32, algorithms=["HS256"])
    key.write_bytes(b"b" * 33)  # rotated (scripts/slurm.sh makes a new one if it must)
    second = tokens.token("alice")
    assert jwt.decode(second, b"b" * 33, algorithms=["HS256"])["sun"] == "alice"
    key.unlink()
    with pytest.raises(ValueError, match="cannot be read"):
        tokens.token("alice")


def test_a_cluster_not_configured_or_not_reachable_as_configured(tmp_path):
    c = config({"s": {"kind": "slurm", "cluster": "r"}}, {"r": REST})  # its key: /k, absent
    with pytest.raises(ClusterNotConfigured, match="Slurm cluster 'gone' is not configured"):
        cluster_of(c, "gone")
    with pytest.raises(ClusterError, match="cannot be reached as configured") as e:
        cluster_of(c, "r")
    assert not isinstance(e.value, ClusterNotConfigured)  # (its jobs stay unknown, not ended)


def test_the_start_estimate_goes_once_the_job_no_longer_waits():
    from uws_hub.db.models import Job
    from uws_hub.jobs.state import end_job, set_current

    job = Job(status="pending", job_details={"current_job_details": {"message": "Waiting"}})
    set_current(job, message="Waiting in the Slurm queue.", start_estimate="2026-12-06T15:00:00Z")
    assert job.job_details["current_job_details"]["start_estimate"] == "2026-12-06T15:00:00Z"
    set_current(job, start_estimate=None)  # no estimate any more: no key, not null
    assert "start_estimate" not in job.job_details["current_job_details"]
    set_current(job, start_estimate="2026-12-06T15:00:00Z")
    end_job(job, "failed", "Slurm refused it.")  # stopped or failed while waiting
    assert "start_estimate" not in job.job_details["current_job_details"]


class OneByOne(FixedSource):
    """A source that also reads one job alone (as RestSource does), counting its reads."""

    way = "rest"

    def __init__(self, answer):
        super().__init__(answer)
        self.whole, self.alone = 0, 0

    async def queue(self):  # (new records each read, as from Slurm)
        self.whole += 1
        return copy.deepcopy(await super().queue())

    async def read_one(self, job_id):
        self.alone += 1
        return copy.deepcopy(self.answer.get(job_id)) or SlurmJob(job_id, "GONE")


def test_a_few_starting_jobs_are_read_alone_many_share_one_read():
    from uws_hub.slurm.monitor import FEW_STARTING, SlurmMonitor

    jobs = {str(i): SlurmJob(str(i), "PENDING", partition="batch") for i in range(10)}
    source = OneByOne(jobs)
    monitor = SlurmMonitor(interval=10, source=source, cluster="unit-starting")

    async def checks(ids, max_age=0.0):
        return await asyncio.gather(*(monitor.status_while_starting(i, max_age) for i in ids))

    async def scenario():
        few = [str(i) for i in range(FEW_STARTING)]
        first = await checks(few)
        assert all(j.pending for j in first)
        assert source.alone == FEW_STARTING  # each read alone, the check not waiting for more
        # a job read alone has no place in the queue (that needs every job): the shared read
        # gives it, started in the background, one for all, at most once per interval
        assert [j.position for j in first] == [None] * FEW_STARTING
        await asyncio.sleep(0.01)
        assert source.whole == 1
        again = await checks(few)  # the next check shows the place
        assert [j.position for j in again] == [1, 2, 3, 4]
        assert (source.alone, source.whole) == (2 * FEW_STARTING, 1)
        for _ in range(5):
            await checks(few)
        assert source.whole == 1  # not once per check: once per interval
        everyone = [str(i) for i in range(10)]  # ten starting at once: one read for all
        monitor.snapshot_time -= 1
        await checks(everyone)
        # (the first four, still counted as starting, are read alone again; the rest share one)
        assert source.whole == 2 and source.alone == 8 * FEW_STARTING
        # a read alone is as fresh as asked: the checks while a server starts (once a second)
        # do not read it at each of theirs
        one = OneByOne({"7": SlurmJob("7", "RUNNING", partition="batch")})
        alone = SlurmMonitor(interval=10, source=one, cluster="unit-starting-age")
        for _ in range(5):
            assert (await alone.status_while_starting("7", 1.0)).running
        assert one.alone == 1
        one.answer["7"] = SlurmJob("7", "FAILED", partition="batch")
        assert (await alone.status_while_starting("7", 1.0)).running  # (read < 1 s ago)
        assert (await alone.status_while_starting("7", 0.0)).ended and one.alone == 2

    asyncio.run(scenario())
    # the commands way has no such read: always the shared snapshot
    commands = SlurmMonitor(interval=10, source=FixedSource(jobs), cluster="unit-starting-cmds")
    assert asyncio.run(commands.status_while_starting("3", 0.2)).pending


class BrokenTokens:
    """A site's token service that fails in its own way."""

    def token(self, username: str, operator: bool = False) -> str:
        raise ConnectionError("token service down")


def test_a_failing_token_service_makes_the_queue_unknown_never_a_crash():
    from uws_hub.slurm.monitor import SlurmMonitor
    from uws_hub.slurm.rest import RestSource

    rest = SlurmRest("http://127.0.0.1:9", BrokenTokens(), "reader", timeout=1, cluster="unit-bt")
    monitor = SlurmMonitor(interval=10, source=RestSource(rest), cluster="unit-bt")
    job = asyncio.run(monitor.status("42", max_age=0))
    assert job.state == UNKNOWN and "token service down" in job.reason
    assert asyncio.run(RestSource(rest).read_one("42")).state == UNKNOWN


def test_a_source_failing_in_its_own_way_is_an_unknown_queue_read_once_per_interval():
    """Not only QueueUnknown: any failure of the queue read (slurmrestd answering a shape the
    source did not expect) leaves the jobs unknown, never ended, and is not read again at
    every check (the background read of a job read alone would otherwise repeat it)."""
    from uws_hub.slurm.monitor import SlurmMonitor

    class Odd(OneByOne):
        async def queue(self):
            self.whole += 1
            raise AttributeError("'list' object has no attribute 'get'")

    source = Odd({"1": SlurmJob("1", "PENDING", partition="batch")})
    monitor = SlurmMonitor(interval=10, source=source, cluster="unit-odd")

    async def scenario():
        assert (await monitor.status("1")).state == UNKNOWN
        for _ in range(5):
            await monitor.status_while_starting("1", 0.2)
            await asyncio.sleep(0)
        assert source.whole == 1
        assert "no attribute" in monitor.last_error

    asyncio.run(scenario())
