// Loaded by tap into every test process (package.json "tap"."node-arg").
//
// Processes a test spawns (the apps, npm start, the demo, the bench) record no coverage of
// their own. tap merges their V8 block coverage with the test processes' badly: merged
// reports lost 5-10 % of lines from run to run (handler.ts fell from 97 % to 61-72 % when one
// child's coverage was merged in), so the floor failed at random. Code run by children is
// covered in-process by the tests that import it; the children's behaviour is still asserted
// by the tests that spawn them. The test process's own coverage is already being recorded
// when this runs; the variable only reaches the processes it spawns.
process.env._TAPJS_PROCESSINFO_COVERAGE_ = '0';
