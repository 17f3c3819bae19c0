"""WorkflowAPI: submit, durable promise, attach / output, re-submit (§4.18)."""

from __future__ import annotations

from .harness import ConformanceEnv, eventually, new_key

WORKFLOW = "BlockAndWaitWorkflow"


class TestWorkflowAPI:
    def test_setAndResolve(self, conf: ConformanceEnv) -> None:
        workflow_id = new_key()
        sent = conf.ingress.send(WORKFLOW, "run", "Francesco", key=workflow_id)
        assert sent.status == "Accepted", sent.raw

        def state_is_set() -> None:
            state = conf.ingress.call(WORKFLOW, "getState", key=workflow_id)
            assert isinstance(state, str) and state.strip(), f"getState returned {state!r}"

        eventually(state_is_set, what="state is not blank")
        conf.ingress.call(WORKFLOW, "unblock", "Till", key=workflow_id, idempotent=True)

        assert conf.ingress.workflow_attach(WORKFLOW, workflow_id) == "Till"
        # The output can be fetched again.
        output = conf.ingress.workflow_output(WORKFLOW, workflow_id)
        assert output.ready and output.value == "Till", output

        # Re-submitting has no effect.
        again = conf.ingress.send(WORKFLOW, "run", "Francesco", key=workflow_id)
        assert again.status == "PreviouslyAccepted", again.raw
        assert again.invocation_id == sent.invocation_id
        output = conf.ingress.workflow_output(WORKFLOW, workflow_id)
        assert output.ready and output.value == "Till", output
