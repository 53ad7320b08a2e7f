import Foundation

/// A real HTTP GET of a Prometheus endpoint, parsed by the reference parser
/// (`prometheus_client.parser`, through `scripts/scrape-metrics.py`).
public struct MetricsScrape: Sendable {
    /// One sample of a family: its full name (with `_bucket`, `_count`... for histograms), labels, value.
    public struct Sample: Sendable {
        public let name: String
        public let labels: [String: String]
        public let value: Double
    }

    /// The response's Content-Type header.
    public let contentType: String
    /// Metric family name (without `_total` for counters, as the parser reports it) to its type.
    public let types: [String: String]
    /// Metric family name to its samples.
    public let samples: [String: [Sample]]

    /// The value of the one sample named `name` whose labels include `labels`, or nil.
    public func value(_ name: String, labels: [String: String] = [:]) -> Double? {
        samples.values.joined().first { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }?.value
    }

    /// The distinct values of label `label` among samples named `name`.
    public func labelValues(_ name: String, label: String) -> Set<String> {
        Set(samples.values.joined().filter { $0.name == name }.compactMap { $0.labels[label] })
    }

    /// GETs `url` and parses the answer; throws with the scraper's message if the GET fails, the
    /// status is not 200, or the text is not valid Prometheus text format.
    public static func get(_ url: String, directory: URL) throws -> MetricsScrape {
        let script = TestPython.packageRoot.appendingPathComponent("scripts/scrape-metrics.py")
        let name = "scrape-\(UUID().uuidString.prefix(8))"
        let python = TestPython.command
        let scraper = try ChildProcess(python[0], Array(python.dropFirst()) + [script.path, url], directory: directory, name: name)
        guard let code = scraper.wait(timeout: .seconds(60)) else { throw ChildProcessError("the scraper hung") }
        guard code == 0 else { throw ScrapeError(exitCode: code, message: scraper.stderr) }
        guard let json = try JSONSerialization.jsonObject(with: Data(scraper.stdout.utf8)) as? [String: Any],
              let families = json["families"] as? [String: [String: Any]] else {
            throw ChildProcessError("the scraper printed no JSON: \(scraper.stdout)")
        }
        var types: [String: String] = [:]
        var samples: [String: [Sample]] = [:]
        for (family, body) in families {
            types[family] = body["type"] as? String
            samples[family] = ((body["samples"] as? [[String: Any]]) ?? []).map {
                Sample(name: $0["name"] as? String ?? "", labels: $0["labels"] as? [String: String] ?? [:],
                       value: ($0["value"] as? NSNumber)?.doubleValue ?? .nan)
            }
        }
        return MetricsScrape(contentType: json["content_type"] as? String ?? "", types: types, samples: samples)
    }
}

extension MetricsScrape {
    /// `get` on a thread of its own: waiting for the scraper must not block Swift's shared
    /// executor, which serves the HTTP requests of a server in this process.
    public static func fetch(_ url: String, directory: URL) async throws -> MetricsScrape {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try get(url, directory: directory) }) }.start()
        }
    }
}

/// The scraper failed: exit code 2 for a failed GET or a status other than 200, 3 for text the
/// parser refused, 4 for a missing prometheus_client.
public struct ScrapeError: Error, CustomStringConvertible {
    public let exitCode: Int32
    public let message: String
    public var description: String {
        "scrape-metrics.py exited with \(exitCode): \(message)" + (exitCode == 4 ? "; \(TestPython.installHint)" : "")
    }
}
