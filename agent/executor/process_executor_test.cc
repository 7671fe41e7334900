#include "agent/executor/process_executor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/executor/task_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::executor {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kLostMessage[] = "runner exited without recording a result; the task's process was lost";

std::string RunnerPath() {
  const char* bin_dir = getenv("FNA_TEST_BIN_DIR");  // set by CTest
  const fs::path dir =
      bin_dir != nullptr ? fs::path(bin_dir) : fs::read_symlink("/proc/self/exe").parent_path();
  return (dir / "flyte-neptune-runner").string();
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

std::vector<std::string> Lines(const LogBatch& batch) {
  std::vector<std::string> lines;
  for (const LogLine& line : batch.lines) {
    EXPECT_FALSE(line.timestamp.has_value());
    lines.push_back(line.message);
  }
  return lines;
}

// Polls `done` every 10 ms for up to 10 s: for waiting on real processes.
bool Eventually(const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// Whether process `pid` has exited (a zombie whose parent does not reap it counts).
bool Exited(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t end_of_name = stat.rfind(')');
  return end_of_name != std::string::npos && stat.substr(end_of_name + 2, 1) == "Z";
}

pid_t ReadPid(const fs::path& path) {
  pid_t pid = 0;
  EXPECT_TRUE(absl::SimpleAtoi(ReadFile(path), &pid)) << path;
  return pid;
}

TaskSpec ShellTask(std::string name, std::string script) {
  TaskSpec spec;
  spec.name = std::move(name);
  spec.argv = {"/bin/sh", "-c", std::move(script)};
  return spec;
}

// A script that waits for the file `go` to appear in its working directory.
constexpr char kWaitForGo[] = "while [ ! -e go ]; do sleep 0.01; done";

class ProcessExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string root = absl::StrCat(::testing::TempDir(), "process_executor_test-XXXXXX");
    ASSERT_NE(mkdtemp(root.data()), nullptr);
    root_ = fs::canonical(root);
    state_ = root_ / "state";
    executor_ = NewExecutor();
    ASSERT_NE(executor_, nullptr);
  }

  // Stops whatever a failing test left running. No test makes a runner complain (nor a sanitizer built into
  // it).
  void TearDown() override {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(state_, ec)) {
      const std::string name = entry.path().filename().string();
      if (name[0] == '.' || !executor_->Abort({name}).ok()) continue;
      Eventually([&] {
        const absl::StatusOr<TaskStatus> status = executor_->GetStatus({name});
        return !status.ok() || IsTerminal(status->state);
      });
      // The runner has exited (sanitizer reports included) once its lock is free.
      const int lock = open((entry.path() / kLockFile).c_str(), O_RDONLY | O_CLOEXEC);
      EXPECT_EQ(flock(lock, LOCK_SH), 0);
      close(lock);
      EXPECT_EQ(ReadFile(entry.path() / kRunnerLog), "") << name;
    }
    fs::remove_all(root_, ec);
  }

  std::unique_ptr<ProcessExecutor> NewExecutor(absl::Duration abort_grace = absl::Seconds(5),
                                               std::string runner_path = RunnerPath()) {
    ProcessExecutor::Options options;
    options.state_directory = state_.string();
    options.runner_path = std::move(runner_path);
    options.abort_grace = abort_grace;
    absl::StatusOr<std::unique_ptr<ProcessExecutor>> executor = ProcessExecutor::Create(std::move(options));
    EXPECT_TRUE(executor.ok()) << executor.status();
    return executor.ok() ? *std::move(executor) : nullptr;
  }

  TaskStatus WaitForTerminal(Executor& executor, const std::string& name) {
    absl::StatusOr<TaskStatus> status;
    const bool done = Eventually([&] {
      status = executor.GetStatus({name});
      return !status.ok() || IsTerminal(status->state);
    });
    EXPECT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(done) << name << " did not finish";
    return status.ok() ? *status : TaskStatus();
  }
  TaskStatus WaitForTerminal(const std::string& name) { return WaitForTerminal(*executor_, name); }

  fs::path WorkDir(const std::string& name) const { return state_ / name / "work"; }

  int CountLines(const fs::path& path) {
    const std::string content = ReadFile(path);
    return static_cast<int>(std::count(content.begin(), content.end(), '\n'));
  }

  fs::path root_;
  fs::path state_;
  std::unique_ptr<ProcessExecutor> executor_;
};

TEST_F(ProcessExecutorTest, SuccessfulTaskRunsInItsWorkingDirectory) {
  const absl::Time before = absl::Now();
  ASSERT_TRUE(executor_->Start(ShellTask("ok", "pwd -P > pwd.txt")).ok());
  const TaskStatus status = WaitForTerminal("ok");
  EXPECT_EQ(status.state, TaskState::kSucceeded);
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_EQ(status.message, "");
  ASSERT_TRUE(status.started_at.has_value());
  ASSERT_TRUE(status.finished_at.has_value());
  EXPECT_LE(before, *status.started_at);
  EXPECT_LE(*status.started_at, *status.finished_at);
  EXPECT_LE(*status.finished_at, absl::Now());
  EXPECT_EQ(status.working_directory, WorkDir("ok").string());
  EXPECT_TRUE(fs::is_directory(status.working_directory));
  EXPECT_EQ(ReadFile(WorkDir("ok") / "pwd.txt"), WorkDir("ok").string() + "\n");
  EXPECT_FALSE(status.run_finalized);
  EXPECT_EQ(status.pending_final_write, std::nullopt);
}

TEST_F(ProcessExecutorTest, EnvironmentIsTheInheritedVariablesThenTheSpecs) {
  ASSERT_EQ(setenv("FNA_TEST_NOT_INHERITED", "leak", 1), 0);
  executor_ = NewExecutor();
  ASSERT_EQ(unsetenv("FNA_TEST_NOT_INHERITED"), 0);
  TaskSpec spec;
  spec.name = "env";
  spec.argv = {"env"};  // found through the PATH of the task's environment
  spec.env = {{"FOO", "bar"}, {"DUP", "first"}, {"HOME", "/nowhere"}, {"DUP", "second"}};
  ASSERT_TRUE(executor_->Start(spec).ok());
  ASSERT_EQ(WaitForTerminal("env").state, TaskState::kSucceeded);

  std::vector<std::string> expected;
  for (const char* name : {"PATH", "HOME", "LANG", "TZ"}) {
    const char* value = getenv(name);
    if (std::string(name) == "HOME") value = "/nowhere";  // the spec's value, in the inherited one's place
    if (value != nullptr) expected.push_back(absl::StrCat(name, "=", value));
  }
  expected.push_back("FOO=bar");
  expected.push_back("DUP=second");
  const absl::StatusOr<LogBatch> logs = executor_->ReadLogs({"env"}, LogQuery());
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_EQ(Lines(*logs), expected);
}

TEST_F(ProcessExecutorTest, NonZeroExitIsRetryable) {
  ASSERT_TRUE(executor_->Start(ShellTask("exit-three", "exit 3")).ok());
  const TaskStatus status = WaitForTerminal("exit-three");
  EXPECT_EQ(status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_EQ(status.message, "[exit-three] terminated with exit code (3)");
  EXPECT_TRUE(status.finished_at.has_value());
}

TEST_F(ProcessExecutorTest, KilledBySignalReportsExitCode128PlusSignal) {
  ASSERT_TRUE(executor_->Start(ShellTask("killed", "kill -9 $$")).ok());
  const TaskStatus status = WaitForTerminal("killed");
  EXPECT_EQ(status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(status.exit_code, 137);
  EXPECT_EQ(status.message, "[killed] killed by signal 9 (SIGKILL)");
}

TEST_F(ProcessExecutorTest, CommandThatCannotStartFails) {
  TaskSpec by_path;
  by_path.name = "no-binary";
  by_path.argv = {"/nonexistent/fna-no-such-binary", "arg"};
  TaskSpec by_name;
  by_name.name = "no-command";
  by_name.argv = {"fna-no-such-command"};
  ASSERT_TRUE(executor_->Start(by_path).ok());
  ASSERT_TRUE(executor_->Start(by_name).ok());

  TaskStatus status = WaitForTerminal("no-binary");
  EXPECT_EQ(status.state, TaskState::kFailed);
  EXPECT_EQ(status.exit_code, std::nullopt);
  EXPECT_EQ(status.message, "failed to start /nonexistent/fna-no-such-binary: No such file or directory");
  status = WaitForTerminal("no-command");
  EXPECT_EQ(status.state, TaskState::kFailed);
  EXPECT_EQ(status.exit_code, std::nullopt);
  EXPECT_EQ(status.message, "failed to start fna-no-such-command: No such file or directory");
}

TEST_F(ProcessExecutorTest, AbortKillsTheWholeProcessGroup) {
  ASSERT_TRUE(
      executor_
          ->Start(ShellTask("abort-me",
                            "sleep 1000 & echo $! > grandchild.tmp && mv grandchild.tmp grandchild.pid; "
                            "echo $$ > child.tmp && mv child.tmp child.pid; wait"))
          .ok());
  const fs::path work = WorkDir("abort-me");
  ASSERT_TRUE(Eventually([&] { return fs::exists(work / "child.pid"); }));
  const pid_t child = ReadPid(work / "child.pid");
  const pid_t grandchild = ReadPid(work / "grandchild.pid");
  ASSERT_EQ(kill(child, 0), 0);
  ASSERT_EQ(kill(grandchild, 0), 0);
  const absl::StatusOr<TaskStatus> running = executor_->GetStatus({"abort-me"});
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->state, TaskState::kRunning);

  ASSERT_TRUE(executor_->Abort({"abort-me"}).ok());
  const TaskStatus status = WaitForTerminal("abort-me");
  EXPECT_EQ(status.state, TaskState::kAborted);
  EXPECT_EQ(status.message, "aborted");
  EXPECT_EQ(status.exit_code, 128 + SIGTERM);
  // The runner reaps the whole group before it records the result.
  EXPECT_EQ(kill(child, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_EQ(kill(grandchild, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_TRUE(executor_->Abort({"abort-me"}).ok());
  EXPECT_EQ(WaitForTerminal("abort-me").state, TaskState::kAborted);
}

TEST_F(ProcessExecutorTest, AbortEscalatesToSigkillAfterTheGrace) {
  executor_ = NewExecutor(absl::Milliseconds(100));
  ASSERT_TRUE(executor_->Start(ShellTask("stubborn", "trap '' TERM; touch ready; exec sleep 1000")).ok());
  ASSERT_TRUE(Eventually([&] { return fs::exists(WorkDir("stubborn") / "ready"); }));
  const absl::Time aborted_at = absl::Now();
  ASSERT_TRUE(executor_->Abort({"stubborn"}).ok());
  const TaskStatus status = WaitForTerminal("stubborn");
  EXPECT_EQ(status.state, TaskState::kAborted);
  EXPECT_EQ(status.exit_code, 128 + SIGKILL);
  ASSERT_TRUE(status.finished_at.has_value());
  EXPECT_GE(*status.finished_at - aborted_at, absl::Milliseconds(100));
}

TEST_F(ProcessExecutorTest, AbortOfUnknownOrFinishedTaskIsOk) {
  EXPECT_TRUE(executor_->Abort({"never-started"}).ok());
  ASSERT_TRUE(executor_->Start(ShellTask("done", "true")).ok());
  ASSERT_EQ(WaitForTerminal("done").state, TaskState::kSucceeded);
  EXPECT_TRUE(executor_->Abort({"done"}).ok());
  EXPECT_EQ(WaitForTerminal("done").state, TaskState::kSucceeded);
}

TEST_F(ProcessExecutorTest, UnknownTaskIsNotFound) {
  EXPECT_EQ(executor_->GetStatus({"unknown"}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(executor_->ReadLogs({"unknown"}, LogQuery()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(executor_->MarkRunFinalized({"unknown"}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(executor_->RecordPendingFinalWrite({"unknown"}, "r").code(), absl::StatusCode::kNotFound);
}

TEST_F(ProcessExecutorTest, RepeatedStartRunsOneProcess) {
  const TaskSpec spec =
      ShellTask("repeat", absl::StrCat("echo run >> ", (root_ / "runs.txt").string(), "; ", kWaitForGo));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(executor_->Start(spec).ok());
  std::ofstream(WorkDir("repeat") / "go").close();
  EXPECT_EQ(WaitForTerminal("repeat").state, TaskState::kSucceeded);
  EXPECT_TRUE(executor_->Start(spec).ok());
  EXPECT_EQ(CountLines(root_ / "runs.txt"), 1);
}

TEST_F(ProcessExecutorTest, ConcurrentStartsRunOneProcess) {
  const TaskSpec spec = ShellTask("concurrent", absl::StrCat("echo run >> ", (root_ / "runs.txt").string()));
  constexpr int kThreads = 16;
  absl::Barrier barrier(kThreads);
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      barrier.Block();
      results[i] = executor_->Start(spec);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& result : results) EXPECT_TRUE(result.ok()) << result;
  EXPECT_EQ(WaitForTerminal("concurrent").state, TaskState::kSucceeded);
  EXPECT_EQ(CountLines(root_ / "runs.txt"), 1);
  std::vector<std::string> entries;
  for (const auto& entry : fs::directory_iterator(state_))
    entries.push_back(entry.path().filename().string());
  EXPECT_THAT(entries, ElementsAre("concurrent"));  // no temporary directory is left behind
}

TEST_F(ProcessExecutorTest, RestartedAgentSeesRunningAndFinishedTasks) {
  ASSERT_TRUE(executor_->Start(ShellTask("waiting", kWaitForGo)).ok());
  ASSERT_TRUE(executor_->Start(ShellTask("finished", "exit 4")).ok());
  ASSERT_EQ(WaitForTerminal("finished").state, TaskState::kRetryableFailed);
  executor_.reset();

  executor_ = NewExecutor();
  const absl::StatusOr<TaskStatus> running = executor_->GetStatus({"waiting"});
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->state, TaskState::kRunning);
  EXPECT_TRUE(running->started_at.has_value());
  EXPECT_EQ(running->finished_at, std::nullopt);
  EXPECT_EQ(running->exit_code, std::nullopt);
  const absl::StatusOr<TaskStatus> finished = executor_->GetStatus({"finished"});
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(finished->state, TaskState::kRetryableFailed);
  EXPECT_EQ(finished->exit_code, 4);

  std::ofstream(WorkDir("waiting") / "go").close();
  EXPECT_EQ(WaitForTerminal("waiting").state, TaskState::kSucceeded);
}

TEST_F(ProcessExecutorTest, TaskNeverLaunchedIsPendingUntilTheNextStartLaunchesIt) {
  // A runner that exits at once stands for an agent that crashed between creating the task and launching it.
  const std::unique_ptr<ProcessExecutor> crashing = NewExecutor(absl::Seconds(5), "/bin/false");
  const TaskSpec spec = ShellTask("relaunch", absl::StrCat("echo run >> ", (root_ / "runs.txt").string()));
  const absl::Status failed = crashing->Start(spec);
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(failed.message(), HasSubstr("failed (exit code 1)"));
  const absl::StatusOr<TaskStatus> pending = executor_->GetStatus({"relaunch"});
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_EQ(pending->state, TaskState::kPending);
  EXPECT_EQ(pending->message, "not launched yet; a repeated Start launches it");

  ASSERT_TRUE(executor_->Start(spec).ok());
  EXPECT_EQ(WaitForTerminal("relaunch").state, TaskState::kSucceeded);
  EXPECT_EQ(CountLines(root_ / "runs.txt"), 1);
}

TEST_F(ProcessExecutorTest, AbortOfTaskNeverLaunchedKeepsItFromLaunching) {
  const std::unique_ptr<ProcessExecutor> crashing = NewExecutor(absl::Seconds(5), "/bin/false");
  const TaskSpec spec = ShellTask("never", absl::StrCat("echo run >> ", (root_ / "runs.txt").string()));
  ASSERT_FALSE(crashing->Start(spec).ok());
  ASSERT_TRUE(executor_->Abort({"never"}).ok());
  ASSERT_TRUE(executor_->Start(spec).ok());
  const TaskStatus status = WaitForTerminal("never");
  EXPECT_EQ(status.state, TaskState::kAborted);
  EXPECT_EQ(status.exit_code, std::nullopt);
  EXPECT_EQ(status.started_at, std::nullopt);
  EXPECT_TRUE(status.finished_at.has_value());
  EXPECT_FALSE(fs::exists(root_ / "runs.txt"));
}

TEST_F(ProcessExecutorTest, RunnerThatDiesLosesTheTask) {
  ASSERT_TRUE(executor_->Start(ShellTask("orphan", kWaitForGo)).ok());
  const std::optional<std::string> runner_json =
      *ReadFileIfExists((state_ / "orphan" / kRunnerFile).string());
  ASSERT_TRUE(runner_json.has_value());
  const absl::StatusOr<RunnerFile> runner = ParseRunnerFile(*runner_json);
  ASSERT_TRUE(runner.ok()) << runner.status();
  ASSERT_EQ(kill(runner->runner_pid, SIGKILL), 0);

  const TaskStatus status = WaitForTerminal("orphan");
  EXPECT_EQ(status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(status.message, kLostMessage);
  EXPECT_EQ(status.exit_code, std::nullopt);
  EXPECT_EQ(status.started_at, runner->started_at);
  // The task's process dies with its runner.
  EXPECT_TRUE(Eventually([&] { return Exited(runner->child_pid); }));
  // A lost task is not run again.
  ASSERT_TRUE(executor_->Start(ShellTask("orphan", kWaitForGo)).ok());
  EXPECT_EQ(WaitForTerminal("orphan").message, kLostMessage);
}

TEST_F(ProcessExecutorTest, ReadLogsByTailAndToken) {
  ASSERT_TRUE(executor_->Start(ShellTask("logs", "printf 'l1\\nl2\\nl3\\r\\nl4\\nl5\\n'")).ok());
  ASSERT_EQ(WaitForTerminal("logs").state, TaskState::kSucceeded);

  LogQuery tail;
  tail.tail_lines = 2;
  absl::StatusOr<LogBatch> batch = executor_->ReadLogs({"logs"}, tail);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_THAT(Lines(*batch), ElementsAre("l4", "l5"));
  EXPECT_EQ(batch->next_token, "16");
  EXPECT_TRUE(batch->complete);

  LogQuery query;
  query.max_bytes = 6;
  std::vector<std::vector<std::string>> batches;
  std::vector<std::string> tokens;
  for (;;) {
    batch = executor_->ReadLogs({"logs"}, query);
    ASSERT_TRUE(batch.ok()) << batch.status();
    batches.push_back(Lines(*batch));
    tokens.push_back(batch->next_token);
    if (batch->complete) break;
    query.token = batch->next_token;
  }
  // Each batch's lines, joined by line breaks, fit in max_bytes ("l3\r\nl4" counts its \r).
  EXPECT_THAT(batches, ElementsAre(ElementsAre("l1", "l2"), ElementsAre("l3", "l4"), ElementsAre("l5")));
  EXPECT_THAT(tokens, ElementsAre("6", "13", "16"));

  query.token = "16";
  batch = executor_->ReadLogs({"logs"}, query);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_THAT(Lines(*batch), IsEmpty());
  EXPECT_EQ(batch->next_token, "16");
  EXPECT_TRUE(batch->complete);
}

TEST_F(ProcessExecutorTest, ReadLogsHoldsBackAPartialLineUntilTheTaskFinishes) {
  ASSERT_TRUE(executor_->Start(ShellTask("partial", absl::StrCat("printf 'a\\nb'; ", kWaitForGo))).ok());
  absl::StatusOr<LogBatch> batch;
  ASSERT_TRUE(Eventually([&] {
    batch = executor_->ReadLogs({"partial"}, LogQuery());
    return !batch.ok() || !batch->lines.empty();
  }));
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_THAT(Lines(*batch), ElementsAre("a"));
  EXPECT_EQ(batch->next_token, "2");
  EXPECT_FALSE(batch->complete);
  LogQuery tail;
  tail.tail_lines = 1;
  batch = executor_->ReadLogs({"partial"}, tail);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_THAT(Lines(*batch), ElementsAre("a"));
  EXPECT_FALSE(batch->complete);

  std::ofstream(WorkDir("partial") / "go").close();
  ASSERT_EQ(WaitForTerminal("partial").state, TaskState::kSucceeded);
  LogQuery rest;
  rest.token = "2";
  batch = executor_->ReadLogs({"partial"}, rest);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_THAT(Lines(*batch), ElementsAre("b"));
  EXPECT_EQ(batch->next_token, "3");
  EXPECT_TRUE(batch->complete);
  batch = executor_->ReadLogs({"partial"}, tail);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_THAT(Lines(*batch), ElementsAre("b"));
}

TEST_F(ProcessExecutorTest, ReadLogsSplitsALineLongerThanMaxBytes) {
  ASSERT_TRUE(executor_->Start(ShellTask("long", "printf 'abcdefgh\\nij\\n'")).ok());
  ASSERT_EQ(WaitForTerminal("long").state, TaskState::kSucceeded);
  LogQuery query;
  query.max_bytes = 3;
  std::vector<std::string> lines;
  std::vector<std::string> tokens;
  for (;;) {
    const absl::StatusOr<LogBatch> batch = executor_->ReadLogs({"long"}, query);
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (std::string& line : Lines(*batch)) lines.push_back(std::move(line));
    tokens.push_back(batch->next_token);
    if (batch->complete) break;
    query.token = batch->next_token;
  }
  EXPECT_THAT(lines, ElementsAre("abc", "def", "gh", "ij"));
  EXPECT_THAT(tokens, ElementsAre("3", "6", "9", "12"));
}

TEST_F(ProcessExecutorTest, ReadLogsRejectsBadQueries) {
  ASSERT_TRUE(executor_->Start(ShellTask("query", "echo hello")).ok());
  ASSERT_EQ(WaitForTerminal("query").state, TaskState::kSucceeded);
  LogQuery query;
  query.token = "x";
  EXPECT_EQ(executor_->ReadLogs({"query"}, query).status().code(), absl::StatusCode::kInvalidArgument);
  query.token = "7";  // past the end of "hello\n"
  EXPECT_EQ(executor_->ReadLogs({"query"}, query).status().code(), absl::StatusCode::kInvalidArgument);
  query.token = "";
  query.max_bytes = 0;
  EXPECT_EQ(executor_->ReadLogs({"query"}, query).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ProcessExecutorTest, PendingFinalWritesRoundTripUntilTheRunIsFinalized) {
  ASSERT_TRUE(executor_->Start(ShellTask("task-one", "true")).ok());
  ASSERT_TRUE(executor_->Start(ShellTask("task-two", "true")).ok());
  ASSERT_TRUE(executor_->RecordPendingFinalWrite({"task-two"}, "record two").ok());
  ASSERT_TRUE(executor_->RecordPendingFinalWrite({"task-one"}, "record one").ok());
  ASSERT_TRUE(executor_->RecordPendingFinalWrite({"task-one"}, "record one, again").ok());
  absl::StatusOr<std::vector<std::string>> pending = executor_->ListPendingFinalWrites();
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_THAT(*pending, ElementsAre("record one, again", "record two"));
  absl::StatusOr<TaskStatus> status = executor_->GetStatus({"task-one"});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->pending_final_write, "record one, again");
  EXPECT_FALSE(status->run_finalized);

  ASSERT_TRUE(executor_->MarkRunFinalized({"task-one"}).ok());
  ASSERT_TRUE(executor_->MarkRunFinalized({"task-one"}).ok());
  ASSERT_TRUE(executor_->RecordPendingFinalWrite({"task-one"}, "too late").ok());
  pending = executor_->ListPendingFinalWrites();
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_THAT(*pending, ElementsAre("record two"));
  status = executor_->GetStatus({"task-one"});
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(status->run_finalized);
  EXPECT_EQ(status->pending_final_write, std::nullopt);

  // A restarted agent sees the same records.
  executor_ = NewExecutor();
  pending = executor_->ListPendingFinalWrites();
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_THAT(*pending, ElementsAre("record two"));
}

TEST_F(ProcessExecutorTest, InvalidSpecsAreRejected) {
  for (const std::string& name :
       {std::string(""), std::string("Upper"), std::string("-lead"), std::string("trail-"),
        std::string("a_b"), std::string("a.b"), std::string("../escape"), std::string(51, 'a')}) {
    EXPECT_EQ(executor_->Start(ShellTask(name, "true")).code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(executor_->GetStatus({name}).status().code(), absl::StatusCode::kInvalidArgument) << name;
  }
  TaskSpec spec = ShellTask("valid", "true");
  spec.argv.clear();
  EXPECT_EQ(executor_->Start(spec).code(), absl::StatusCode::kInvalidArgument);
  spec = ShellTask("valid", "true");
  spec.env = {{"A=B", "c"}};
  EXPECT_EQ(executor_->Start(spec).code(), absl::StatusCode::kInvalidArgument);
  spec.env = {{"", "c"}};
  EXPECT_EQ(executor_->Start(spec).code(), absl::StatusCode::kInvalidArgument);
  spec.env.clear();
  spec.argv.push_back(std::string("nul\0byte", 8));
  EXPECT_EQ(executor_->Start(spec).code(), absl::StatusCode::kInvalidArgument);
  spec = ShellTask("valid", "true");
  spec.env = {{"BAD_UTF8", "\xff"}};
  EXPECT_EQ(executor_->Start(spec).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(fs::is_empty(state_));

  const std::string longest(50, 'a');
  ASSERT_TRUE(executor_->Start(ShellTask(longest, "true")).ok());
  EXPECT_EQ(WaitForTerminal(longest).state, TaskState::kSucceeded);
}

TEST(ProcessExecutorCreateTest, RejectsBadOptionsBeforeCreatingAnything) {
  ProcessExecutor::Options options;
  options.state_directory = absl::StrCat(::testing::TempDir(), "process_executor_create_test-", getpid());
  options.runner_path = "/nonexistent/flyte-neptune-runner";
  EXPECT_EQ(ProcessExecutor::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.runner_path = RunnerPath();
  options.inherited_env = {"A=B"};
  EXPECT_EQ(ProcessExecutor::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.inherited_env = {};
  options.abort_grace = absl::Seconds(-1);
  EXPECT_EQ(ProcessExecutor::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(options.state_directory));
}

}  // namespace
}  // namespace fna::executor
