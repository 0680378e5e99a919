require ["variables","fileinto"]; fileinto "v${a}";
