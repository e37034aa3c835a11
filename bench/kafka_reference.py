"""The plain-producer reference for `techmon bench ingest --backend kafka`.

Sends the `key<TAB>json` lines that `techmon bench ingest --keyed-ndjson FILE` wrote
to a Kafka topic with librdkafka (the `confluent-kafka` package bundles it), with the
same producer settings techmon uses: idempotent, acks=all, murmur2 partitioner.

    pip install confluent-kafka
    python3 bench/kafka_reference.py --brokers 127.0.0.1:9092 --file events.keyed
"""

import argparse
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()

    with open(args.file, "rb") as f:
        lines = [line.rstrip(b"\n").split(b"\t", 1) for line in f if line.strip()]

    topic = f"reference-{uuid.uuid4()}"
    admin = AdminClient({"bootstrap.servers": args.brokers})
    for future in admin.create_topics([NewTopic(topic, args.partitions, 1)]).values():
        future.result()

    producer = Producer(
        {
            "bootstrap.servers": args.brokers,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
        }
    )
    failed = []

    def delivered(err, _msg):
        if err is not None:
            failed.append(err)

    started = time.perf_counter()
    for key, value in lines:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush()
    seconds = time.perf_counter() - started
    if failed:
        raise SystemExit(f"{len(failed)} deliveries failed, first: {failed[0]}")
    print(f"plain librdkafka producer: {len(lines)} events in {seconds:.2f}s = {len(lines) / seconds:.0f} events/s")


if __name__ == "__main__":
    main()
