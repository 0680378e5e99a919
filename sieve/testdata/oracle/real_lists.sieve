require ["fileinto", "variables", "regex", "mailbox", "envelope", "subaddress"];
# File list mail by its List-Id, creating the folder.
if header :regex "list-id" "<([a-z0-9-]+)[.@]" {
	set :lower "list" "${1}";
	fileinto :create "Lists.${list}";
	stop;
}
# Plus-addressing: me+box goes into the folder "box".
if envelope :detail :matches "to" "?*" {
	set :upperfirst "folder" "${0}";
	if mailboxexists "${folder}" {
		fileinto "${folder}";
	} else {
		fileinto :create "INBOX.${folder}";
	}
}
