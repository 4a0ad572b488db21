"""Dapr's pub/sub API against the in-memory-pubsub plugin (kind pubsub): the Dapr Python SDK's `publish_event`
and streaming `subscribe` (SubscribeTopicEventsAlpha1, bidirectional), grpcio and curl-style HTTP
`POST /v1.0/publish/{pubsub}/{topic}` and `/v1.0-alpha1/publish/bulk/...`. Dapr's answers: an unknown pubsub
404 ERR_PUBSUB_NOT_FOUND / INVALID_ARGUMENT, no pubsub at all 400 ERR_PUBSUB_NOT_CONFIGURED / FAILED_PRECONDITION,
an empty topic 404 ERR_TOPIC_EMPTY (dapr/dapr pkg/api/errors/pubsub.go). CloudEvents as Dapr builds them
(components-contrib pubsub/envelope.go)."""

import json

import grpc
import pytest

RPC_TIMEOUT_S = 15


@pytest.fixture
def sidecar(molt, plugins_dir):
    if not any(plugins_dir.glob("in-memory-pubsub-*.so")):
        pytest.fail(f"no in-memory-pubsub plugin in {plugins_dir} (branch pubsub-memory; make build stages it)")
    return molt([{"kind": "pubsub", "name": "pubsub", "plugin": "in-memory-pubsub"}])


def grpc_publish(sidecar, pubsub, topic, data=b"{}", content_type="application/json", metadata=None):
    from dapr.proto.runtime.v1 import pubsub_pb2
    request = pubsub_pb2.PublishEventRequest(pubsub_name=pubsub, topic=topic, data=data, data_content_type=content_type,
                                             metadata=metadata or {})
    return sidecar.dapr_stub().PublishEvent(request, metadata=sidecar.app_metadata(), timeout=RPC_TIMEOUT_S)


def grpc_code(call):
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


class Subscriber:
    """A raw SubscribeTopicEventsAlpha1 stream with grpcio: `receive()` the next event, `answer(id, status)`."""

    def __init__(self, sidecar, pubsub, topic, metadata=None):
        import queue
        from dapr.proto.runtime.v1 import pubsub_pb2, appcallback_pb2
        self.pb, self.cb = pubsub_pb2, appcallback_pb2
        self.outgoing = queue.Queue()
        self.outgoing.put(pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
            initial_request=pubsub_pb2.SubscribeTopicEventsRequestInitialAlpha1(pubsub_name=pubsub, topic=topic,
                                                                                metadata=metadata or {})))
        self.call = sidecar.dapr_stub().SubscribeTopicEventsAlpha1(iter(self.outgoing.get, None), metadata=sidecar.app_metadata())
        first = next(self.call)
        assert first.HasField("initial_response"), first

    def receive(self):
        message = next(self.call)
        assert message.HasField("event_message"), message
        return message.event_message

    def answer(self, event_id, status):
        self.outgoing.put(self.pb.SubscribeTopicEventsRequestAlpha1(event_processed=self.pb.SubscribeTopicEventsRequestProcessedAlpha1(
            id=event_id, status=self.cb.TopicEventResponse(status=status))))

    def close(self):
        self.call.cancel()


def test_the_sdk_publishes_and_receives_in_order(sidecar):
    seen = sidecar.run_sdk("""
        import json
        from dapr.clients import DaprClient
        with DaprClient() as client:
            subscription = client.subscribe(pubsub_name="pubsub", topic="orders")
            for i in range(5):
                client.publish_event("pubsub", "orders", json.dumps({"orderId": i}), data_content_type="application/json")
            got = []
            for _ in range(5):
                message = subscription.next_message()
                got.append(message.data())
                subscription.respond_success(message)
            subscription.close()
            emit(got=got)
    """)
    assert seen["got"] == [{"orderId": i} for i in range(5)], seen


def test_events_carry_daprs_cloudevent_fields(sidecar):
    subscriber = Subscriber(sidecar, "pubsub", "fields")
    try:
        answer = sidecar.http("POST", "/v1.0/publish/pubsub/fields", body=json.dumps({"a": 1}),
                              # (the harness's curl sends Content-Type: application/json with every body)
                              headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
        assert answer.status == 204, str(answer)
        event = subscriber.receive()
        assert event.type == "com.dapr.event.sent" and event.spec_version == "1.0", event
        assert event.data_content_type == "application/json" and json.loads(event.data) == {"a": 1}, event
        assert event.topic == "fields" and event.pubsub_name == "pubsub" and event.id, event
        assert event.source  # the app id
        extensions = dict(event.extensions)
        assert extensions["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", extensions
        assert extensions["pubsubname"] == "pubsub" and extensions["topic"] == "fields", extensions
        subscriber.answer(event.id, 0)
    finally:
        subscriber.close()


def test_raw_payload_is_delivered_unwrapped(sidecar):
    subscriber = Subscriber(sidecar, "pubsub", "raw", metadata={"rawPayload": "true"})
    try:
        answer = sidecar.http("POST", "/v1.0/publish/pubsub/raw?metadata.rawPayload=true", body="just bytes",
                              headers={"Content-Type": "text/plain"})
        assert answer.status == 204, str(answer)
        event = subscriber.receive()
        assert event.data == b"just bytes" and event.data_content_type == "application/octet-stream", event
        subscriber.answer(event.id, 0)
    finally:
        subscriber.close()


def test_retry_is_redelivered_and_drop_is_not(sidecar):
    subscriber = Subscriber(sidecar, "pubsub", "outcomes")
    try:
        grpc_publish(sidecar, "pubsub", "outcomes", b'{"n": 1}')
        first = subscriber.receive()
        subscriber.answer(first.id, 1)  # RETRY
        again = subscriber.receive()
        assert again.id == first.id and again.data == first.data, (first, again)
        subscriber.answer(again.id, 2)  # DROP
        grpc_publish(sidecar, "pubsub", "outcomes", b'{"n": 2}')
        nxt = subscriber.receive()
        assert json.loads(nxt.data) == {"n": 2}, nxt  # the dropped one did not come again
        subscriber.answer(nxt.id, 0)
    finally:
        subscriber.close()


def test_a_disconnected_subscribers_unanswered_events_go_to_the_next(sidecar):
    first = Subscriber(sidecar, "pubsub", "handover")
    grpc_publish(sidecar, "pubsub", "handover", b'{"n": 1}')
    taken = first.receive()
    first.close()  # never answered
    second = Subscriber(sidecar, "pubsub", "handover")
    try:
        event = second.receive()
        assert event.id == taken.id and json.loads(event.data) == {"n": 1}, event
        second.answer(event.id, 0)
    finally:
        second.close()


def test_unknown_pubsub_empty_topic_and_bad_metadata_answer_daprs_codes(sidecar):
    answer = sidecar.http("POST", "/v1.0/publish/nope/t", body={})
    assert answer.status == 404 and answer.json()["errorCode"] == "ERR_PUBSUB_NOT_FOUND", str(answer)
    assert grpc_code(lambda: grpc_publish(sidecar, "nope", "t")) == grpc.StatusCode.INVALID_ARGUMENT
    answer = sidecar.http("POST", "/v1.0/publish/pubsub/", body={})
    assert answer.status == 404 and answer.json()["errorCode"] == "ERR_TOPIC_EMPTY", str(answer)
    assert grpc_code(lambda: grpc_publish(sidecar, "pubsub", "")) == grpc.StatusCode.INVALID_ARGUMENT
    answer = sidecar.http("POST", "/v1.0/publish/pubsub/t?metadata.rawPayload=maybe", body={})
    assert answer.status == 400 and answer.json()["errorCode"] == "ERR_PUBSUB_REQUEST_METADATA", str(answer)


def test_no_pubsub_at_all_is_err_pubsub_not_configured(molt):
    sidecar = molt([])
    answer = sidecar.http("POST", "/v1.0/publish/pubsub/t", body={})
    assert answer.status == 400 and answer.json()["errorCode"] == "ERR_PUBSUB_NOT_CONFIGURED", str(answer)
    assert grpc_code(lambda: grpc_publish(sidecar, "pubsub", "t")) == grpc.StatusCode.FAILED_PRECONDITION


def test_an_oversize_message_is_refused(sidecar):
    answer = sidecar.http("POST", "/v1.0/publish/pubsub/big", body="x" * ((1 << 20) + 1), headers={"Content-Type": "text/plain"})
    assert answer.status == 413 and answer.json()["errorCode"] == "ERR_PUBSUB_PUBLISH_MESSAGE", str(answer)
    assert grpc_code(lambda: grpc_publish(sidecar, "pubsub", "big", b"x" * ((1 << 20) + 1))) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_bulk_publish_over_http_and_grpc(sidecar):
    subscriber = Subscriber(sidecar, "pubsub", "bulk")
    try:
        answer = sidecar.http("POST", "/v1.0-alpha1/publish/bulk/pubsub/bulk", body=[
            {"entryId": "1", "event": {"n": 1}, "contentType": "application/json"},
            {"entryId": "2", "event": "two", "contentType": "text/plain"},
        ])
        assert answer.status == 204, str(answer)
        from dapr.proto.runtime.v1 import pubsub_pb2
        request = pubsub_pb2.BulkPublishRequest(pubsub_name="pubsub", topic="bulk", entries=[
            pubsub_pb2.BulkPublishRequestEntry(entry_id="3", event=b'{"n": 3}', content_type="application/json")])
        reply = sidecar.dapr_stub().BulkPublishEventAlpha1(request, metadata=sidecar.app_metadata(), timeout=RPC_TIMEOUT_S)
        assert list(reply.failedEntries) == []
        got = []
        for _ in range(3):
            event = subscriber.receive()
            got.append(event.data)
            subscriber.answer(event.id, 0)
        assert got == [b'{"n":1}', b"two", b'{"n":3}'], got
        duplicate = sidecar.http("POST", "/v1.0-alpha1/publish/bulk/pubsub/bulk", body=[
            {"entryId": "1", "event": "a", "contentType": "text/plain"}, {"entryId": "1", "event": "b", "contentType": "text/plain"}])
        assert duplicate.status == 400 and duplicate.json()["errorCode"] == "ERR_PUBSUB_EVENTS_SER", str(duplicate)
    finally:
        subscriber.close()
