#!/bin/bash
# The hardening issue's hostile examples, rerun by hand against a built binary (B=path to pick one; the
# debug build by default): each line is a case, its exit status, its time and what it printed. Every case is
# also held by a test (HostileInputTests, FuzzTests, ...); this is the campaign to read, not a test.
# Needs python3 with numpy and safetensors (Scripts/reference/requirements.txt) for two of the inputs it writes.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-$ROOT/.build/debug/swift-finetune}
M=$ROOT/Tests/Fixtures/models/smollm_chat; W=$(mktemp -d /tmp/sf-campaign.XXXXXX); trap "rm -rf $W" EXIT; cd $ROOT
run() { local name="$1"; shift; local t0=$(date +%s.%N); timeout 120 "$@" >$W/err 2>&1; local rc=$?; local t1=$(date +%s.%N)
  printf '%-44s exit %3s %5.1fs  %s\n' "$name" "$rc" "$(echo "$t1-$t0" | bc)" "$(grep -v '^note:\|^ *$\|^run .swift-finetune help\|problems\?$\|examples, .*tokens\|^model state on each rank' $W/err | sed 's/^ *//' | head -2 | tr '\n' ' ' | cut -c1-260)"; }
copy() { rm -rf $W/$1; cp -r $M $W/$1; echo $W/$1; }
py() { python3 -c "$1"; }
# Crashes
for id in 5000 100000000; do d=$(copy added$id); py "import json;p='$d/tokenizer.json';t=json.load(open(p));t['added_tokens'].append({'id':$id,'content':'<x>','single_word':False,'lstrip':False,'rstrip':False,'normalized':False,'special':True});json.dump(t,open(p,'w'))"
  run "added token id $id (eval)" $B eval --model $d --data $M/eval.jsonl; done
d=$(copy macro); py "import json;p='$d/tokenizer_config.json';t=json.load(open(p));t['chat_template']='{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}';json.dump(t,open(p,'w'))"
run "template macro recursion" $B generate --model $d --prompt hi --chat --max-new-tokens 1
d=$(copy parens); py "import json;p='$d/tokenizer_config.json';t=json.load(open(p));t['chat_template']='{{ '+'('*100000+'1'+')'*100000+' }}';json.dump(t,open(p,'w'))"
run "template 100000 nested parentheses" $B generate --model $d --prompt hi --chat --max-new-tokens 1
d=$(copy lists); py "import json;p='$d/tokenizer_config.json';t=json.load(open(p));t['chat_template']='{{ '+'['*100000+' }}';json.dump(t,open(p,'w'))"
run "template 100000 nested lists" $B generate --model $d --prompt hi --chat --max-new-tokens 1
py "open('$W/deep20k.yaml','w').write('a: '+'['*20000+']'*20000+'\n')"; run "YAML nested 20,000 deep" $B validate $W/deep20k.yaml
for kv in vocab_size=1000000000000 hidden_size=1000000000000 max_position_embeddings=0 max_position_embeddings=-1; do k=${kv%=*}; v=${kv#*=}; d=$(copy c$k$v)
  py "import json;p='$d/config.json';c=json.load(open(p));c['$k']=$v;json.dump(c,open(p,'w'))"; run "config $k $v" $B generate --model $d --prompt hi --max-new-tokens 1; done
for kv in training.micro_batch_size=1000000000000 data.max_seq_len=1000000000000; do run "recipe $kv" $B Recipes/quickstart_tiny.yaml $kv output.dir=$W/o1; done
d=$(copy bigtpl); py "import json;p='$d/tokenizer_config.json';t=json.load(open(p));t['chat_template']=\"{{ 'a' * 10000000000 }}\";json.dump(t,open(p,'w'))"
run "template 'a' * 10000000000" $B generate --model $d --prompt hi --chat --max-new-tokens 1
run "--max-new-tokens 9223372036854775000" $B generate --model $M --prompt hi --max-new-tokens 9223372036854775000
run "tokenize < /dev/zero" bash -c "$B tokenize --model $M < /dev/zero"
# Hangs
d=$(copy fifo); rm $d/model.safetensors; mkfifo $d/model.safetensors; run "FIFO model.safetensors (inspect)" $B inspect $d; run "FIFO model.safetensors (eval)" $B eval --model $d --data $M/eval.jsonl
py "
lines=['a0: &a0 [x, x, x, x, x, x, x, x, x]']
for i in range(1,30): lines.append(f'a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]')
open('$W/laughs.yaml','w').write('\n'.join(lines)+'\n')"; run "YAML billion laughs" $B validate $W/laughs.yaml
py "
lines=['v0: x']+['v%d: \${v%d}\${v%d}' % (i, i-1, i-1) for i in range(1,40)]
open('$W/refs.yaml','w').write(chr(10).join(lines)+chr(10)+'model:'+chr(10)+'  path: \${v39}'+chr(10))"; run "\${} references, 39 doubling levels" $B validate $W/refs.yaml
d=$(copy regex); py "import json;p='$d/tokenizer.json';t=json.load(open(p));t['pre_tokenizer']={'type':'Sequence','pretokenizers':[{'type':'Split','pattern':{'Regex':'(a|aa)+\$'},'behavior':'Isolated','invert':False},t['pre_tokenizer']]};json.dump(t,open(p,'w'))"
run "catastrophic Split regex (a|aa)+\$" $B tokenize --model $d --text "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"
py "open('$W/deep100k.yaml','w').write('a:\n'+''.join(' '*(i+1)+'- \n' for i in range(0))+'x: '+'{a: '*100000+'1'+'}'*100000+'\n')"; run "YAML nested 100,000 deep" $B validate $W/deep100k.yaml
# Silent garbage or loss
mkdir -p $W/userout && echo mine > $W/userout/notes.txt; run "export into a folder with user files" $B export $M $W/userout; ls $W/userout | tr '\n' ' '; echo
d=$(copy selfexp); run "export onto its own source" $B export $d $d
printf '{"text": "hello world"}\n' | gzip > $W/d.jsonl.gz; py "b=bytearray(open('$W/d.jsonl.gz','rb').read()); b[-8]^=1; open('$W/d.jsonl.gz','wb').write(b)"; run "gzip CRC flipped" $B eval --model $M --data $W/d.jsonl.gz
R="Recipes/quickstart_tiny.yaml training.max_steps=2 logging.progress=none"
$B $R output.dir=$W/run output.save_steps=1 >/dev/null 2>&1; : > $W/run/latest; run "resume auto, empty latest" $B $R output.dir=$W/run resume=auto
echo "../../etc" > $W/run/latest; run "resume auto, latest outside the folder" $B $R output.dir=$W/run resume=auto
echo global_step-3 > $W/run/latest; run "resume auto, negative global_step" $B $R output.dir=$W/run resume=auto
for kv in rms_norm_eps=0 rms_norm_eps=-1; do k=${kv%=*}; v=${kv#*=}; d=$(copy n$k$v); py "import json;p='$d/config.json';c=json.load(open(p));c['$k']=$v;json.dump(c,open(p,'w'))"; run "config $k $v" $B eval --model $d --data $M/eval.jsonl; done
for v in 0 -1; do d=$(copy theta$v); py "import json;p='$d/config.json';c=json.load(open(p));c['rope_parameters']['rope_theta']=$v;json.dump(c,open(p,'w'))"; run "config rope_theta $v" $B eval --model $d --data $M/eval.jsonl; done
d=$(copy ropef); py "import json;p='$d/config.json';c=json.load(open(p));c['rope_parameters']={'rope_type':'linear','factor':0,'rope_theta':10000.0};json.dump(c,open(p,'w'))"; run "config rope factor 0" $B eval --model $d --data $M/eval.jsonl
d=$(copy nanw); py "
from safetensors.numpy import load_file, save_file; import numpy as np
t=load_file('$d/model.safetensors'); k=sorted(t)[3]; a=t[k].copy(); a.flat[0]=np.nan; t[k]=a; save_file(t,'$d/model.safetensors',metadata={'format':'pt'})"; run "NaN weight" $B eval --model $d --data $M/eval.jsonl
run "override training.max_steps=---" $B validate Recipes/quickstart_tiny.yaml training.max_steps=---
run "min_delta: .nan" $B validate Recipes/quickstart_tiny.yaml "training.early_stopping={patience: 3, min_delta: .nan}"
run "sample_max_new_tokens: -1" $B validate Recipes/quickstart_tiny.yaml logging.sample_max_new_tokens=-1
py "import json;json.dump({'model':{'type':'Unigram','unk_id':5,'vocab':[['<unk>',0.0],['a',-1.0]]}},open('$W/tokenizer.json','w'))"; mkdir -p $W/uni && mv $W/tokenizer.json $W/uni/; run "Unigram unk_id outside the vocabulary" $B tokenize --model $W/uni --text ab
mkdir -p $W/run/global_step9.tmp-99999; $B $R output.dir=$W/run output.overwrite=true >/dev/null 2>&1; [ -e $W/run/global_step9.tmp-99999 ] && echo "stale staging folder: still there" || echo "stale staging folder: removed at start"
run "fresh run into a used output folder" $B $R output.dir=$W/run
# Unclear errors
d=$(copy trunc); head -c 300 $M/config.json > $d/config.json; run "truncated config.json" $B eval --model $d --data $M/eval.jsonl
d=$(copy loop); rm $d/config.json; ln -s $d/config.json $d/config.json; run "symlink loop config.json" $B eval --model $d --data $M/eval.jsonl
d=$(copy dir); rm $d/config.json; mkdir $d/config.json; run "directory where config.json belongs" $B eval --model $d --data $M/eval.jsonl
echo x > $W/afile; run "output.dir is a file" $B $R output.dir=$W/afile
printf 'model: {path: x}\n\xff\xfe: 1\n' > $W/enc.yaml; run "YAML encoding error (line 2)" $B validate $W/enc.yaml
run "huge integer override" $B validate Recipes/quickstart_tiny.yaml training.max_steps=99999999999999999999999
echo "help lines mentioning merge-lora: $($B help 2>&1 | grep -c merge-lora)"
run "--chat=yes (then: generate's prompt ids)" bash -c "$B generate --model $M --prompt hi --chat=yes --max-new-tokens 1 >/dev/null && echo accepted as --chat=true >&2"
