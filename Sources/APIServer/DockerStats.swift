import Foundation
import Runtime

/// `GET /containers/{id}/stats`: one sample (`stream=false`, over a second so that the CPU
/// share has a previous one, unless `one-shot`), or a sample a second until the client goes.
extension DockerHandler {
    func stats(_ record: ContainerRecord, query: [String: String]) throws -> Response {
        let runtime = self.runtime
        let first = try ContainerStats.sample(record, runtime: runtime)
        let streaming = query["stream"].map { !["0", "false"].contains($0) } ?? true
        guard streaming else {
            if Handler.flag(query, "one-shot") { return try DockerHandler.json(DockerViews.stats(first, previous: nil)) }
            Thread.sleep(forTimeInterval: 1)
            let second = (try? ContainerStats.sample(record, runtime: runtime)) ?? first
            return try DockerHandler.json(DockerViews.stats(second, previous: first))
        }
        return Response(status: 200, contentType: "application/json") { stream in
            var previous = first
            guard stream.write(Handler.jsonLine(DockerViews.stats(first, previous: nil))) else { return }
            while true {
                Thread.sleep(forTimeInterval: 1)
                guard let now = try? ContainerStats.sample(record, runtime: runtime),
                      stream.write(Handler.jsonLine(DockerViews.stats(now, previous: previous))) else { return }
                previous = now
            }
        }
    }
}

extension DockerViews {
    /// Docker's stats shape (API 1.41) for `sample`, with `previous` as its `precpu_stats`.
    static func stats(_ sample: ContainerStats, previous: ContainerStats?) -> [String: Any] {
        func cpu(_ stats: ContainerStats?) -> [String: Any] {
            ["cpu_usage": ["total_usage": stats?.cpuNanoseconds ?? 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0] as [String: Any],
             "system_cpu_usage": stats?.systemNanoseconds ?? 0, "online_cpus": stats?.onlineCPUs ?? 0,
             "throttling_data": ["periods": 0, "throttled_periods": 0, "throttled_time": 0]]
        }
        let network: [String: Any] = [
            "rx_bytes": sample.networkReceivedBytes, "rx_packets": sample.networkReceivedPackets, "rx_errors": 0, "rx_dropped": 0,
            "tx_bytes": sample.networkSentBytes, "tx_packets": sample.networkSentPackets, "tx_errors": 0, "tx_dropped": 0,
        ]
        return [
            "id": sample.id, "name": "/" + sample.name, "read": time(sample.read), "preread": time(previous?.read),
            "pids_stats": ["current": sample.pids], "num_procs": 0,
            "cpu_stats": cpu(sample), "precpu_stats": cpu(previous),
            "memory_stats": ["usage": sample.memoryBytes, "limit": sample.memoryLimitBytes,
                             "stats": ["total_inactive_file": sample.inactiveFileBytes]] as [String: Any],
            "networks": ["eth0": network],
            "blkio_stats": ["io_service_bytes_recursive": [
                ["major": 0, "minor": 0, "op": "read", "value": sample.blockReadBytes] as [String: Any],
                ["major": 0, "minor": 0, "op": "write", "value": sample.blockWrittenBytes],
            ]],
        ]
    }
}
