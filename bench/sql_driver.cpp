// bench/sql_driver: runs one prepared statement from several clients for a fixed time and prints
// its rate, like `pgbench -M prepared`, but hands each call its parameter from a list held in
// memory. pgbench can only draw numbers, so its scripts had to fetch each key from a table inside
// the statement; that fetch cost more than verify itself and hid the difference being measured.
//
//   sql_driver CONNINFO SECONDS CLIENTS PARAMS_SQL STATEMENT [EXPECT]
//
// PARAMS_SQL: a query whose first column is the list of $1 values (each call draws one at random),
//             or "-" for a statement without parameters.
// EXPECT:     when given, the first column of the first row of every answer must equal it (e.g.
//             "t" for valid), so a run that silently measured failures is refused.
// SQL_DRIVER_SERVER_PID: the postmaster's pid. When set, the CPU time the whole cluster (the
//             postmaster and every child: the clients' backends, the worker, background writers)
//             spent during the run is read from /proc/<pid>/schedstat, and the line gains
//             "<server CPU nanoseconds per call>": what the database pays per call, which the
//             rate alone does not show when the clients share the machine's cores with it.
// Prints "<calls per second> <calls> <seconds>[ <server ns per call>]" on one line; exits 1 on
// any error or mismatch.
#include <dirent.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string conninfo;
  double seconds = 0;
  int clients = 0;
  std::string params_sql;
  std::string statement;
  const char* expect = nullptr;
};

[[noreturn]] void fail(const std::string& what, PGconn* conn) {
  std::fprintf(stderr, "sql_driver: %s%s%s\n", what.c_str(), conn ? ": " : "",
               conn ? PQerrorMessage(conn) : "");
  std::exit(1);
}

PGconn* connect(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) fail("cannot connect", conn);
  return conn;
}

std::vector<std::string> load_params(const Options& options) {
  std::vector<std::string> params;
  if (options.params_sql == "-") return params;
  PGconn* conn = connect(options.conninfo);
  PGresult* result = PQexec(conn, options.params_sql.c_str());
  if (PQresultStatus(result) != PGRES_TUPLES_OK) fail("the parameter query failed", conn);
  for (int row = 0; row < PQntuples(result); ++row) params.emplace_back(PQgetvalue(result, row, 0));
  PQclear(result);
  PQfinish(conn);
  if (params.empty()) fail("the parameter query returned no rows", nullptr);
  return params;
}

// xorshift64*: cheap and independent per client; the draw must cost nothing next to a round trip.
std::uint64_t next_random(std::uint64_t& state) {
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545F4914F6CDD1DULL;
}

struct ClientTotals {
  std::uint64_t calls = 0;
  std::uint64_t mismatches = 0;
  std::string first_mismatch;
};

// CPU time (ns) of `postmaster` and each of its children, by pid.
std::map<long, std::uint64_t> cluster_cpu(long postmaster) {
  std::map<long, std::uint64_t> cpu;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) fail("cannot read /proc", nullptr);
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;  // gone meanwhile
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse after the last ')'.
    const std::size_t paren = line.rfind(')');
    if (paren == std::string::npos || paren + 4 >= line.size()) continue;
    const long ppid = std::strtol(line.c_str() + paren + 4, nullptr, 10);
    if (pid != postmaster && ppid != postmaster) continue;
    std::ifstream schedstat("/proc/" + std::to_string(pid) + "/schedstat");
    std::uint64_t ns = 0;
    if (schedstat >> ns) cpu[pid] = ns;
  }
  closedir(proc);
  return cpu;
}

// CPU spent between two readings: processes that started meanwhile count whole, ones that ended
// meanwhile are lost (a background process's last moments; never the clients' backends).
std::uint64_t cpu_between(const std::map<long, std::uint64_t>& before, const std::map<long, std::uint64_t>& after) {
  std::uint64_t spent = 0;
  for (const auto& [pid, ns] : after) {
    auto it = before.find(pid);
    const std::uint64_t start = it == before.end() ? 0 : it->second;
    if (ns >= start) spent += ns - start;
  }
  return spent;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6 || argc > 7) {
    std::fprintf(stderr, "usage: sql_driver CONNINFO SECONDS CLIENTS PARAMS_SQL STATEMENT [EXPECT]\n");
    return 2;
  }
  Options options{argv[1], std::atof(argv[2]), std::atoi(argv[3]), argv[4], argv[5],
                  argc == 7 ? argv[6] : nullptr};
  if (options.seconds <= 0 || options.clients <= 0) fail("SECONDS and CLIENTS must be positive", nullptr);
  const std::vector<std::string> params = load_params(options);
  const int nparams = params.empty() ? 0 : 1;

  std::vector<PGconn*> conns;
  for (int i = 0; i < options.clients; ++i) {
    PGconn* conn = connect(options.conninfo);
    PGresult* prepared = PQprepare(conn, "s", options.statement.c_str(), nparams, nullptr);
    if (PQresultStatus(prepared) != PGRES_COMMAND_OK) fail("cannot prepare the statement", conn);
    PQclear(prepared);
    conns.push_back(conn);
  }

  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::vector<ClientTotals> totals(conns.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < conns.size(); ++i) {
    threads.emplace_back([&, i] {
      std::uint64_t state = 0x9E3779B97F4A7C15ULL * (i + 1);
      ClientTotals& mine = totals[i];
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      while (!stop.load(std::memory_order_relaxed)) {
        const char* value = nparams ? params[next_random(state) % params.size()].c_str() : nullptr;
        PGresult* result = PQexecPrepared(conns[i], "s", nparams, &value, nullptr, nullptr, 0);
        if (PQresultStatus(result) != PGRES_TUPLES_OK) fail("a call failed", conns[i]);
        if (options.expect != nullptr &&
            (PQntuples(result) < 1 || std::string(PQgetvalue(result, 0, 0)) != options.expect)) {
          if (mine.mismatches++ == 0) {
            mine.first_mismatch = PQntuples(result) < 1 ? "no row" : PQgetvalue(result, 0, 0);
          }
        }
        PQclear(result);
        ++mine.calls;
      }
    });
  }
  const char* server_pid = std::getenv("SQL_DRIVER_SERVER_PID");
  const long postmaster = server_pid != nullptr ? std::atol(server_pid) : 0;
  std::map<long, std::uint64_t> cpu_before;
  if (postmaster > 0) cpu_before = cluster_cpu(postmaster);
  const Clock::time_point start = Clock::now();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
  stop.store(true);
  for (std::thread& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const std::uint64_t server_ns = postmaster > 0 ? cpu_between(cpu_before, cluster_cpu(postmaster)) : 0;
  for (PGconn* conn : conns) PQfinish(conn);

  std::uint64_t calls = 0, mismatches = 0;
  for (const ClientTotals& client : totals) {
    calls += client.calls;
    mismatches += client.mismatches;
    if (client.mismatches > 0) {
      std::fprintf(stderr, "sql_driver: %llu answers were not \"%s\" (first: \"%s\")\n",
                   static_cast<unsigned long long>(client.mismatches), options.expect,
                   client.first_mismatch.c_str());
    }
  }
  std::printf("%.1f %llu %.3f", calls / elapsed, static_cast<unsigned long long>(calls), elapsed);
  if (postmaster > 0) std::printf(" %.0f", calls > 0 ? static_cast<double>(server_ns) / calls : 0.0);
  std::printf("\n");
  return mismatches == 0 ? 0 : 1;
}
